"""Every file this system writes under data_dir is in docs/inventory.md, with its purge rule."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from tests import crash
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line

INVENTORY = Path(__file__).parent.parent / "docs" / "inventory.md"


def inventory_patterns() -> list[str]:
    """The backticked patterns of the first column of the data_dir table."""
    table = INVENTORY.read_text().split("Outside `data_dir`")[0]
    return re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)


def _tree(data_dir: Path) -> set[str]:
    return {str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file()}


def test_every_file_written_is_in_the_inventory(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings("guards = {max_removal_share = 0.6, max_row_error_share = 0.3}")
    seen: set[str] = set()
    lines = [ncic_line(f"V{i:09d}", f"7INV{i:03d}") for i in range(20)]
    drop.put("VEHEXTRT.txt", ncic_file([*lines, ncic_line("V000000099", "BAD@1")]))
    drop.put("svs.tbl", clew_file([clew_line("7SVS001")]))
    drop.put("sfr.tbl", clew_file([clew_line("5FEL555")]))
    drop.put("slr.tbl", clew_file([clew_line("4PLT444")]))
    ingest_source(settings, "ncic")
    ingest_source(settings, "svs")
    seen |= _tree(settings.data_dir)
    drop.put("VEHEXTRT.txt", ncic_file(lines[:-3], stamp="202611221800"))
    for point in ("after-content-file", "before-commit", "after-commit"):
        crash.killed_at(settings, point, "ingest_source(s, 'ncic')")
        seen |= _tree(settings.data_dir)
    ingest_source(settings, "ncic")
    seen |= _tree(settings.data_dir)
    crash.killed_at(settings, "after-markers", "purge(s, None)")
    seen |= _tree(settings.data_dir)
    purge(settings, None)
    config = str(settings.data_dir.parent / "hotlist.toml")
    CliRunner().invoke(
        app,
        [
            "lookup",
            "7INV001",
            "--user",
            "u",
            "--org",
            "CA0190000",
            "--purpose",
            "patrol",
            "-c",
            config,
        ],
    )
    CliRunner().invoke(app, ["report", "deletions", "-c", config])
    seen |= _tree(settings.data_dir)
    patterns = inventory_patterns()
    assert "store/feeds/*/v*.duckdb" in patterns
    missing = sorted(p for p in seen if not any(fnmatch.fnmatch(p, pat) for pat in patterns))
    assert missing == [], f"add these places to docs/inventory.md with their purge rule: {missing}"
