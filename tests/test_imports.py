"""Imports run one way: no module of ``hotlist/`` or ``flows/`` imports, directly or
through others, a module that imports it. Read statically (ast), so an import inside a
function counts as much as one at the top: it runs, just later."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ("hotlist", "flows")


#: Cycles that other open work removes (the sources package's dispatcher imports its
#: transports, which import its types). A cycle not listed fails.
KNOWN_CYCLES = {
    ("hotlist.sources", "hotlist.sources.landing", "hotlist.sources.local", "hotlist.sources.sftp"),
}


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    return {
        _module_name(root, path): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` (the file ``path``) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return {m for m in found if m in known and m != name}


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Each module of ``packages`` under ``root``, with the project modules it imports."""
    modules = _modules(root, packages)
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_no_module_of_hotlist_or_flows_imports_itself_through_others() -> None:
    found = {tuple(group) for group in cycles(import_graph())}
    assert sorted(found - KNOWN_CYCLES) == []


def test_the_parser_and_the_store_import_one_way() -> None:
    """The store imports the parser; the parser hashes the store's code by path only."""
    graph = import_graph()
    assert "hotlist.parse" in graph["hotlist.store.stream"]
    assert not {m for m in graph["hotlist.parse"] if m.startswith("hotlist.store")}


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text("from . import a\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_parser_defines_no_column_list_of_its_own() -> None:
    """The parser and the store read their columns from one module (hotlist.columns)."""
    tree = ast.parse((ROOT / "hotlist" / "parse.py").read_text())
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert not assigned & {"ENTRY_COLUMNS", "ISSUE_SCHEMA", "CONTENT_COLUMNS"}


def test_an_ingest_flow_module_imports_no_purge_code() -> None:
    """An ingest flow run's process loads only what an ingest needs."""
    graph = import_graph()

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    for flow in ("flows.ingest_ncic", "flows.ingest_svs"):
        assert not {"flows.purge", "hotlist.purge"} & reach(flow), flow
