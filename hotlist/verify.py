"""Forensic verification: has every removed record vanished from every local copy?

Independent of how the purge did its work, it checks what is on disk:

* every DuckDB file: no WAL beside it, physical rows = logical rows in every table
  (``pragma_storage_info``), zero free blocks (``PRAGMA database_size``): a file that had
  rows ``DELETE``d still holds them and fails here;
* no tombstoned entry id in any content file, unless upstream added it again later;
* no leftovers where content rests only in passing (landing, spill, temporary files);
* the content of records awaiting purge (``markers``: their plates) in no table of any
  DuckDB file, no Parquet or CSV export, and no byte of any other file under
  ``data_dir`` and ``PREFECT_HOME`` (Prefect's database and logs included), whatever the
  format (:mod:`hotlist.scan`: compressed, archived, UTF-16 text), and under the
  published directory when it lies outside ``data_dir`` (``[serve] published_dir``, on
  shared storage), searched as ``data_dir`` is;
* the access log: a removed plate only where the law keeps it, the queried element
  (:mod:`hotlist.verify_access`); a removed record's NIC nowhere in it.

A file that cannot be read or decoded is a finding ("unverifiable"), never clean; so is
a ``data_dir`` that does not exist (verifying nothing is no pass). Verification never
creates or changes anything.

Plates shorter than :data:`~hotlist.scan.MIN_SCAN_LEN` are matched in tables only: in raw
bytes they would match by chance.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from hotlist import report_seals
from hotlist.chance import stands
from hotlist.scan import (
    BATCH,
    FREE_TEXT,
    MIN_SCAN_LEN,
    RAW_HIT,
    ByteSearch,
    Unverifiable,
    found_expr,
    holding,
    raw_patterns,
    scan_csv,
    scan_file,
    sniff,
)
from hotlist.sql import identifier
from hotlist.store import control as ctl
from hotlist.store import control_path
from hotlist.store.spill import no_spill
from hotlist.verify_access import AccessLogSearch
from hotlist.verify_reports import is_run_report, scan_report
from hotlist.verify_versions import is_version_file, scan_version_file

#: Where content may rest only while a writer works; anything left there is a finding.
TRANSIENT_DIRS = ("landing", "store/spill")
#: The SB 34 access log (segments too) under ``data_dir``.
AUDIT_DIR = "audit"
#: The purge runs' deletion reports under ``data_dir`` (:mod:`hotlist.verify_reports`).
REPORTS_DIR = "reports"
#: Names of files (or directories) a killed write leaves behind.
LEFTOVER_SUFFIXES = (".wal", ".tmp", ".part", ".dupes")
#: Files searched at once: on two cores, one file's DuckDB or polars search overlaps
#: another's reads and Python work (more threads only add memory).
WORKERS = 2
#: Walks of the roots at most, while files vanish between a walk and their read.
PASSES = 3
VANISHED = "unverifiable: it vanished while it was being verified, on every walk of its directory"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    place: str
    problem: str


@dataclass
class Verification:
    ok: bool = True
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    duckdb_files: int = 0
    markers: int = 0
    #: Superseded content files: the search's source of markers, erased once it passed.
    sources: int = 0
    #: What each serving replica confirmed (:mod:`hotlist.purge_replicas`): name, status,
    #: version, last heartbeat; empty without PostgreSQL.
    replicas: list[dict[str, Any]] = field(default_factory=list)

    def add(self, place: Path | str, problem: str) -> None:
        self.ok = False
        self.findings.append(Finding(str(place), problem))

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "findings": [asdict(f) for f in self.findings]}

    def merge(self, part: Verification) -> None:
        """Take in the findings of one part of the search (one file, say)."""
        self.ok = self.ok and part.ok
        self.findings += part.findings
        self.duckdb_files += part.duckdb_files

    def replica_counts(self) -> str:
        """``2 confirmed, 1 not serving``: the replicas by what they confirmed."""
        counts: dict[str, int] = {}
        for r in self.replicas:
            counts[str(r["status"])] = counts.get(str(r["status"]), 0) + 1
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))

    def summary(self) -> str:
        verdict = "PASS" if self.ok else f"FAIL ({len(self.findings)} findings)"
        return (
            f"{verdict}: {self.files} files ({self.bytes / 1e6:.1f} MB), {self.duckdb_files}"
            f" DuckDB files, {self.markers} records awaiting purge searched for"
            + (
                f" (read from {self.sources} superseded files, erased after)"
                if self.sources
                else ""
            )
            + (
                "; no record awaits purge, so no record content was searched for (each"
                " purge searched for its own records: see the deletion report)"
                if self.markers == 0
                else ""
            )
            + (f"; replicas: {self.replica_counts()}" if self.replicas else "")
        )


def _walk(root: Path) -> Iterator[Path]:
    """The regular files under ``root`` (symbolic links neither followed nor named), in
    path order. A directory that vanished while it was listed (a running Prefect server
    removes its own) is named itself: its stat then fails or shows a directory, and the
    verification walks again (:data:`VANISHED`)."""
    found: list[Path] = []

    def vanished(exc: OSError) -> None:
        # Gone, or replaced by a file, between its parent's listing and its own.
        if not isinstance(exc, FileNotFoundError | NotADirectoryError) or exc.filename is None:
            raise exc
        found.append(Path(exc.filename))

    if root.exists():
        for top, _, names in os.walk(root, onerror=vanished):
            for name in names:
                path = Path(top, name)
                if path.is_file() and not path.is_symlink():
                    found.append(path)
    yield from sorted(found)


def _string_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    return [
        (schema, table, column)
        for schema, table, column in con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns()"
            " WHERE data_type = 'VARCHAR' AND NOT internal"
        ).fetchall()
    ]


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return [
        (s, t)
        for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal"
        ).fetchall()
    ]


def check_duckdb_file(
    path: Path,
    con: duckdb.DuckDBPyConnection,
    markers: pl.Series,
    result: Verification,
    strict_blocks: bool = True,
) -> None:
    """Structure and content of one DuckDB file, opened (read-only) as ``con``."""
    result.duckdb_files += 1
    [size] = con.execute("PRAGMA database_size").fetchall()
    free_blocks = int(size[5])
    if free_blocks and strict_blocks:
        result.add(path, f"{free_blocks} free blocks: unzeroed space may hold deleted rows")
    for schema, table in _tables(con):
        name = f"{identifier(schema)}.{identifier(table)}"
        [[logical]] = con.execute(f"SELECT count(*) FROM {name}").fetchall()  # noqa: S608 (quoted identifiers and constant fragments; values bound)
        [[physical]] = con.execute(
            "SELECT coalesce(sum(count), 0) FROM pragma_storage_info(?)"
            " WHERE column_id = 0 AND segment_type <> 'VALIDITY'",
            [f"{schema}.{table}" if schema != "main" else table],
        ).fetchall()
        if int(physical) != int(logical):
            result.add(
                f"{path}:{table}",
                f"{physical} physical rows but {logical} logical: deleted rows remain in the file",
            )
    if markers.len() == 0:
        return
    long_markers = markers.filter(markers.str.len_chars() >= MIN_SCAN_LEN).to_list()
    columns = _string_columns(con)
    con.register("_markers", pl.DataFrame({"m": markers}).to_arrow())
    try:
        _search_tables(path, con, columns, markers, long_markers, result)
    finally:
        con.unregister("_markers")


def _search_tables(
    path: Path,
    con: duckdb.DuckDBPyConnection,
    columns: list[tuple[str, str, str]],
    markers: pl.Series,
    long_markers: list[str],
    result: Verification,
) -> None:
    for schema, table, column in columns:
        name = f"{identifier(schema)}.{identifier(table)}"
        col = identifier(column)
        if column in FREE_TEXT:  # small (quarantined lines): searched inside, in polars
            values = con.sql(f"SELECT DISTINCT {col} AS v FROM {name}").pl()  # noqa: S608 (quoted identifiers and constant fragments; values bound)
            found = values.select(found_expr(pl.col("v"), markers, long_markers, True)).item()
        else:  # whole values: a semi-join in DuckDB, in bounded memory
            [[found]] = con.execute(
                f"SELECT count(*) FROM {name} WHERE {col} IN (SELECT m FROM _markers)"  # noqa: S608 (quoted identifiers and constant fragments; values bound)
            ).fetchall()
        if found:
            result.add(
                f"{path}:{table}.{column}", f"{found} values hold content of a removed record"
            )


def gone_ids(control: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Tombstoned entry ids that upstream has not added again since."""
    gone: pl.DataFrame = control.sql(
        "SELECT t.entry_id, t.feed, t.purged_at IS NULL AS pending FROM tombstones t"
        " WHERE NOT EXISTS (SELECT 1 FROM changes c WHERE c.entry_id = t.entry_id"
        " AND c.feed = t.feed AND c.op = 'add' AND c.version > t.detected_version)"
    ).pl()
    return gone


def count_gone_entries(
    path: Path, con: duckdb.DuckDBPyConnection, gone: pl.DataFrame, result: Verification
) -> None:
    """Entries of removed records in the content file ``path``, opened as ``con``."""
    try:
        con.register("_gone", gone.select("entry_id").to_arrow())
        try:
            [[count]] = con.execute(
                "SELECT count(*) FROM entries WHERE entry_id IN (SELECT entry_id FROM _gone)"
            ).fetchall()
        finally:
            con.unregister("_gone")
    except duckdb.Error as exc:
        try:
            tables = ", ".join(f"{s}.{t}" for s, t in _tables(con)) or "none"
        except duckdb.Error:
            tables = "unreadable"
        result.add(
            path,
            f"unverifiable: its entries cannot be read ({type(exc).__name__};"
            f" the tables it shows: {tables})",
        )
        return
    if count:
        result.add(path, f"{count} entries of removed records are still in this file")


@dataclass(frozen=True)
class _Search:
    """What one verification searches every file for."""

    markers: pl.Series
    #: The markers long enough to be searched for inside text and raw bytes.
    long_markers: list[str]
    raw: ByteSearch
    access_log: AccessLogSearch
    #: Tombstoned entry ids (:func:`gone_ids`): no content file may hold one.
    gone: pl.DataFrame
    #: Sealed report files' names and SHA-256 (:mod:`hotlist.report_seals`).
    seals: dict[str, str] = field(default_factory=dict)


def _leftover(path: Path, root: Path) -> bool:
    return any(part.endswith(LEFTOVER_SUFFIXES) for part in path.relative_to(root).parts)


def _route(
    path: Path,
    root: Path,
    data_dir: Path,
    tables: frozenset[Path],
    seals: dict[str, str],
    part: Verification,
) -> str | None:
    """How a file's content is searched (``None``: it is not); a leftover name is a
    finding in ``part``. Only the first bytes are read: the search itself may run on a
    worker (:func:`_check_file`)."""
    if _leftover(path, root):
        part.add(path, "leftover of an interrupted write")
        if path.name.endswith(".wal"):
            return None
    if path.name == "keyed-hash.key":
        return None
    if root == data_dir and path.is_relative_to(data_dir / AUDIT_DIR):
        return "access log"
    if root == data_dir and path.name in seals and is_run_report(path, data_dir / REPORTS_DIR):
        return "sealed report"
    with open(path, "rb") as fh:
        head = fh.read(16)
    if path.name.endswith(".duckdb") or sniff(head) == "duckdb":
        return "duckdb"
    if path.name.endswith(".csv") and root in tables:
        return "table"
    if sniff(head) == "raw":
        return "raw"  # searched with every other raw file, at once (:func:`_check_raw`)
    return "decoded"


def _check_file(
    path: Path,
    root: Path,
    data_dir: Path,
    kind: str,
    control: duckdb.DuckDBPyConnection | None,
    search: _Search,
) -> Verification:
    """The content of one file, searched as :func:`_route` said: its findings."""
    result = Verification()
    try:
        _search_file(path, data_dir, kind, control, search, result)
    except Unverifiable as exc:
        result.add(path, f"unverifiable: {exc}")
    except (OSError, duckdb.Error, pl.exceptions.PolarsError) as exc:
        result.add(path, f"unverifiable: cannot be read ({type(exc).__name__})")
    if _unread(result) and not path.exists():
        # A file removed under its read is gone: the next walk finds where its content
        # went, if anywhere. (Content the read did find stays a finding: a file merely
        # unlinked leaves it in the disk's free blocks.)
        vanished = Verification()
        vanished.add(path, VANISHED)
        return vanished
    return result


def _search_file(
    path: Path,
    data_dir: Path,
    kind: str,
    control: duckdb.DuckDBPyConnection | None,
    search: _Search,
    result: Verification,
) -> None:
    if kind == "access log":
        for where, problem in search.access_log.scan(path):
            result.add(f"{path}:{where}", problem)
        return
    if kind == "sealed report":
        # Its bytes as sealed: it holds the sealed texts, judged in the control database.
        if report_seals.digest(path) != search.seals[path.name]:
            result.merge(_check_raw([path], search, data_dir, None)[0])
        return
    control_file = control_path(data_dir)
    if kind == "duckdb":
        if path == control_file and control is not None:
            # The control database holds ids only; its free blocks hold no content.
            check_duckdb_file(path, control, search.markers, result, strict_blocks=False)
            return
        # A file that could not be read is read once more, on a connection of its own: a
        # loaded CI run once saw a content file's catalog empty on one read (its
        # ``entries`` missing) that every other read of the same file found whole. A
        # second complete read that finds the file clean verifies it; two failed reads
        # are the finding, as before.
        for _ in range(2):
            part = Verification()
            _search_duckdb(path, data_dir, path != control_file, search, part)
            if not _unread(part):
                break
        result.merge(part)
        return
    if kind == "table":
        hits = scan_csv(path, search.raw, search.markers)
    else:
        hits = scan_file(path, search.raw, search.markers)
    for where, problem in hits:
        result.add(f"{path}:{where}" if where else path, problem)


def _search_duckdb(
    path: Path, data_dir: Path, strict_blocks: bool, search: _Search, result: Verification
) -> None:
    """One read of a DuckDB file other than the writer's control connection."""
    try:
        con = duckdb.connect(str(path), read_only=True)
        no_spill(con)
    except duckdb.Error as exc:
        result.add(path, f"unverifiable: cannot be opened ({type(exc).__name__})")
        return
    try:
        check_duckdb_file(path, con, search.markers, result, strict_blocks=strict_blocks)
        if search.gone.height and path.is_relative_to(data_dir / "store" / "feeds"):
            # On the connection the file's search opened, not a second one.
            count_gone_entries(path, con, search.gone, result)
    except duckdb.Error as exc:
        result.add(path, f"unverifiable: cannot be read ({type(exc).__name__})")
    finally:
        con.close()


def _check_raw(
    paths: list[Path], search: _Search, data_dir: Path, published: Path | None
) -> list[Verification]:
    """Files searched as raw bytes, all together (:meth:`ByteSearch.files`): one
    automaton per batch of bytes, not one per file. A purge run's report whose bytes hit
    is then read as the report it is (:mod:`hotlist.verify_reports`), and a version's
    file as the JSON the system writes (:mod:`hotlist.verify_versions`): their counts
    and times are no plate."""
    parts = [Verification() for _ in paths]
    reports = data_dir / REPORTS_DIR
    for path, part, found in zip(paths, parts, search.raw.files(paths), strict=True):
        if isinstance(found, OSError):
            part.add(path, _unreadable(path, found))
        elif found and (
            is_run_report(path, reports)
            or (published is not None and is_version_file(path, data_dir, published))
        ):
            try:
                judged = (
                    scan_report(path, search.long_markers)
                    if is_run_report(path, reports)
                    else scan_version_file(path, search.long_markers)
                )
            except OSError as exc:
                part.add(path, _unreadable(path, exc))
                continue
            for where, problem in [(None, RAW_HIT)] if judged is None else judged:
                part.add(f"{path}:{where}" if where else path, problem)
        elif found:
            part.add(path, RAW_HIT)
    return parts


def verify(
    data_dir: Path,
    prefect_home: Path | None,
    markers: list[str],
    control: duckdb.DuckDBPyConnection | None = None,
    pending_ok: bool = False,
    extra_roots: list[Path] | None = None,
    record_ids: list[str] | None = None,
    sources: frozenset[Path] = frozenset(),
    published: Path | None = None,
    access_log_url: str | None = None,
) -> Verification:
    """Check every file under ``data_dir`` (and ``prefect_home``) as described above.

    ``access_log_url``: the access log is in that PostgreSQL database (``[serve]
    database_url``); its records are searched as the file log's lines are.

    ``published`` is the published directory (``Settings.published_dir``); outside
    ``data_dir`` it is one more root, its files searched exactly as ``data_dir``'s.
    ``control`` is the writer's open control connection, if the caller holds one (DuckDB
    refuses a read-only open of a file another connection writes). ``pending_ok`` is for
    the purge itself, which verifies before it marks its tombstones purged. ``record_ids``
    (NICs of the records awaiting purge) are searched for in the access log. ``sources``
    are the superseded content files the markers were read from: the purge erases them
    once everything else verified clean, so they are not searched.
    """
    result = Verification(markers=len(markers), sources=len(sources))
    if not data_dir.is_dir():
        result.add(
            data_dir,
            "data_dir does not exist or is not a directory: nothing to verify"
            " (is data_dir in the configuration right?)",
        )
        return result
    if control is None and control_path(data_dir).exists():
        # A reader: waits (bounded, saying so) while a writer has the control database.
        with ctl.read_only(data_dir) as reader:
            return _verify(result, data_dir, prefect_home, markers, reader, pending_ok,
                           extra_roots, record_ids, sources, published,
                           access_log_url)  # fmt: skip
    return _verify(result, data_dir, prefect_home, markers, control, pending_ok,
                   extra_roots, record_ids, sources, published, access_log_url)  # fmt: skip


def _verify(
    result: Verification,
    data_dir: Path,
    prefect_home: Path | None,
    markers: list[str],
    control: duckdb.DuckDBPyConnection | None,
    pending_ok: bool,
    extra_roots: list[Path] | None,
    record_ids: list[str] | None,
    sources: frozenset[Path],
    published: Path | None,
    access_log_url: str | None = None,
) -> Verification:
    gone = gone_ids(control) if control is not None else pl.DataFrame()
    if gone.height and not pending_ok:
        for feed, count in gone.filter("pending").group_by("feed").len().iter_rows():
            result.add(f"feed {feed}", f"{count} removed records not purged yet")
    series = pl.Series("m", sorted(set(markers)), dtype=pl.String)
    patterns = raw_patterns(series.to_list())
    long_markers = [m for m in series.to_list() if len(m) >= MIN_SCAN_LEN]
    search = _Search(
        series,
        long_markers,
        ByteSearch(patterns),
        AccessLogSearch(markers, record_ids or [], patterns),
        gone,
        report_seals.seals(control) if control is not None else {},
    )
    transient = Verification()
    for rel in TRANSIENT_DIRS:
        for path in _walk(data_dir / rel):
            if path.is_file():  # not a directory that vanished while it was listed
                transient.add(path, "leftover in a transient area (content must not rest here)")
    # Published files outside data_dir (a shared filesystem) are content like data_dir's.
    shared = [published] if published and not published.is_relative_to(data_dir) else []
    if shared and shared[0].exists() and not shared[0].is_dir():
        transient.add(shared[0], "published_dir is not a directory: nothing there can be verified")
    tables = frozenset([data_dir, *shared])
    roots = [data_dir, *shared, *([prefect_home] if prefect_home else []), *(extra_roots or [])]
    where = _Where(data_dir, tables, sources, control, published or data_dir / "published")
    result.merge(transient)
    # A file that vanished between the walk and its read (a SQLite ``-wal`` or ``-shm`` of
    # a running server, a journal shipped and removed) held nothing any more; but what it
    # held may now be under another name, or folded into a file read before. So the roots
    # are walked again, and every file that is new or changed since its first stat is
    # searched; only a file still vanishing after the last pass is a finding.
    seen: dict[Path, tuple[int, int, int, int]] = {}
    for attempt in range(1, PASSES + 1):
        vanished = 0
        for part in _search_pass(roots, where, search, result, seen, first=attempt == 1):
            lost = [Path(f.place) for f in part.findings if f.problem == VANISHED]
            for path in lost:  # searched afresh wherever it is found again
                seen.pop(path, None)
            if attempt < PASSES and lost:
                vanished += 1
                part.findings = [f for f in part.findings if f.problem != VANISHED]
                part.ok = not part.findings
            result.merge(part)
        if not vanished:
            break
        if attempt < PASSES:
            log.info(
                "%d files vanished while they were verified: walking again for what is new"
                " or changed (walk %d of at most %d)",
                vanished, attempt + 1, PASSES,
            )  # fmt: skip
    if access_log_url is not None:
        _check_database_log(access_log_url, search.access_log, result)
    _check_names(roots, sorted(seen), long_markers, result)
    _redact(result, long_markers)
    return result


#: How a place is named whose name holds content of a removed record (never the name).
UNNAMED = "<a name holding content of a removed record>"


def _check_names(
    roots: list[Path], paths: list[Path], markers: list[str], result: Verification
) -> None:
    """The names of the files under the roots (their path below the root) are content
    too: a file named after a removed plate (an export, a result keyed by a task's
    parameter) holds it in its directory, whatever its bytes hold. Judged as free text
    (:func:`~hotlist.scan.holding`: the chance rule); a finding does not repeat the name."""
    if not markers or not paths:
        return
    names: list[tuple[Path, str]] = []
    for path in paths:
        root = next((r for r in roots if path.is_relative_to(r)), None)
        if root is not None:
            names.append((root, str(path.relative_to(root))))
    # A name need not be UTF-8 (its undecodable bytes arrive as surrogates): read as text
    # with those bytes replaced, as no plate is made of them.
    texts = [os.fsencode(name).decode("utf-8", "replace") for _, name in names]
    found = holding(markers, pl.Series(texts, dtype=pl.String))
    for (root, name), hit in zip(names, found.to_list(), strict=True):
        if hit:  # named without the name (:func:`_redact`)
            result.add(root / name, "a file's name holds content of a removed record")


def _redact(result: Verification, markers: list[str]) -> None:
    """Findings never name content of a removed record: a place whose text holds a
    marker (a path, a zip member's name) is cut before the part that holds it. The
    findings go into exception texts, the control database and Prefect's state messages,
    which are searched in turn."""
    if not markers:
        return
    for i, finding in enumerate(result.findings):
        if any(stands(finding.place, m) for m in markers):
            parts = re.split(r"(?<=[/:])", finding.place)  # each part ends in its separator
            kept = ""
            for part in parts:
                if any(stands(kept + part, m) for m in markers):
                    break
                kept += part
            result.findings[i] = Finding(kept + UNNAMED, finding.problem)
    for i, finding in enumerate(result.findings):
        if any(stands(finding.problem, m) for m in markers):
            problem = finding.problem
            for m in markers:
                problem = problem.replace(m, UNNAMED)
            result.findings[i] = Finding(finding.place, problem)


@dataclass(frozen=True)
class _Where:
    """How a pass places each file: the roots' meaning for :func:`_route`."""

    data_dir: Path
    tables: frozenset[Path]
    #: Superseded content files, the markers' source: not searched (see :func:`verify`).
    sources: frozenset[Path]
    #: The writer's control connection, used on the calling thread only.
    control: duckdb.DuckDBPyConnection | None
    #: The published directory (its versions' files: :mod:`hotlist.verify_versions`).
    published: Path


def _stamp(path: Path) -> tuple[int, int, int, int]:
    """What tells a file changed since a walk: its inode, size and times. The change time
    too: a rename or a write with its size and mtime put back (``cp -p``, ``os.utime``)
    leaves the others as they were, and nothing can set it back."""
    info = path.stat(follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode):  # named by the walk: it vanished while it was listed
        raise FileNotFoundError(path)
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _search_pass(
    roots: list[Path],
    where: _Where,
    search: _Search,
    result: Verification,
    seen: dict[Path, tuple[int, int, int, int]],
    first: bool,
) -> list[Verification]:
    """One walk of the roots and the search of its files: every file on the first pass,
    afterwards only those new or changed since ``seen`` (updated). The parts come back in
    the order of the walk, whatever order the searches end in.

    Files are searched on a few threads: DuckDB and polars release the GIL, so one
    file's search, another's reads and the raw bytes' automaton overlap. The largest
    start first (the published CSV beside the content file, not beside the Parquet: two
    table searches at once would add their memory)."""
    data_dir, control = where.data_dir, where.control
    parts: list[Verification | Future[Verification]] = []
    raw: list[tuple[Path, int, int]] = []  # path, part, size
    searches: list[tuple[int, Path, Path, str, int]] = []  # size, path, root, kind, part
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="verify") as pool:
        for root in roots:
            for path in _walk(root):
                if path in where.sources:
                    continue
                part = Verification()
                try:
                    stamp = _stamp(path)
                except FileNotFoundError:
                    part.add(path, VANISHED)
                    parts.append(part)
                    continue
                except OSError as exc:
                    part.add(path, f"unverifiable: cannot be read ({type(exc).__name__})")
                    parts.append(part)
                    continue
                if not first and seen.get(path) == stamp:
                    continue
                seen[path] = stamp
                parts.append(part)
                result.files += 1
                result.bytes += stamp[1]
                try:
                    kind = _route(path, root, data_dir, where.tables, search.seals, part)
                except OSError as exc:
                    part.add(path, _unreadable(path, exc))
                    continue
                if kind == "raw":
                    raw.append((path, len(parts), stamp[1]))
                elif kind is not None:
                    searches.append((stamp[1], path, root, kind, len(parts)))
                if kind is not None:
                    parts.append(Verification())  # replaced by the file's search
        for _, path, root, kind, at in sorted(searches, key=lambda s: -s[0]):
            if path == control_path(data_dir) and control is not None:
                continue  # the caller's connection: used on this thread only, below
            parts[at] = pool.submit(_check_file, path, root, data_dir, kind, None, search)
        raw_groups = [
            (
                group,
                pool.submit(
                    _check_raw, [p for p, _, _ in group], search, data_dir, where.published
                ),
            )
            for group in _shares(raw)
        ]
        for _, path, root, kind, at in searches:
            if path == control_path(data_dir) and control is not None:
                parts[at] = _check_file(path, root, data_dir, kind, control, search)
        for group, raw_parts in raw_groups:
            for (_, at, _), found in zip(group, raw_parts.result(), strict=True):
                parts[at] = found
        return [done if isinstance(done, Verification) else done.result() for done in parts]


def _shares(raw: list[tuple[Path, int, int]]) -> list[list[tuple[Path, int, int]]]:
    """The raw files in one group per worker, of about equal bytes (largest first, each to
    the group with the fewest), when they are more than one batch of the search: deletion
    reports accumulate, and one thread searching them all takes twice as long. Each group
    keeps the order of the walk."""
    if sum(size for _, _, size in raw) <= BATCH:
        return [raw] if raw else []
    groups: list[list[tuple[Path, int, int]]] = [[] for _ in range(WORKERS)]
    load = [0] * WORKERS
    for item in sorted(raw, key=lambda r: -r[2]):
        least = load.index(min(load))
        groups[least].append(item)
        load[least] += item[2]
    return [sorted(group, key=lambda r: r[1]) for group in groups if group]


def _unread(part: Verification) -> bool:
    """Whether every finding of a file's search says it could not be read (none says
    what it holds)."""
    return bool(part.findings) and all(f.problem.startswith("unverifiable") for f in part.findings)


def _unreadable(path: Path, exc: BaseException) -> str:
    """The finding for a file whose read failed: :data:`VANISHED` if it no longer exists."""
    if isinstance(exc, FileNotFoundError) or not path.exists():
        return VANISHED
    return f"unverifiable: cannot be read ({type(exc).__name__})"


def _check_database_log(url: str, search: AccessLogSearch, result: Verification) -> None:
    """The access log in PostgreSQL, searched precisely (:mod:`hotlist.verify_access`)."""
    from hotlist import pg
    from hotlist.audit import pg as pg_log

    place = f"PostgreSQL access log at {pg.where(url)}"
    try:
        found = search.scan_records(pg_log.records(url))
    except (pg.DatabaseUnavailable, pg.SchemaNotCurrent) as exc:
        result.add(place, f"unverifiable: {exc}")
        return
    except Exception as exc:  # a query that failed midway: nothing proven
        result.add(place, f"unverifiable: cannot be read ({type(exc).__name__})")
        return
    for where, problem in found:
        result.add(f"{place}, {where}", problem)
