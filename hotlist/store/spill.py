"""DuckDB's temporary files: where a writer spills, and their erasure.

A writer's connection that sorts or joins more than its memory limit writes temporary
files holding record content. They go to ``store/spill`` under ``data_dir`` (else DuckDB
puts them beside the database file, as ``<file>.tmp``, where nothing would scrub them),
and the next writer scrubs what a killed one left there. Only a writer, holding the
writer lock, spills: readers' connections do not spill at all (:func:`no_spill`).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from hotlist.scrub import scrub_unlink
from hotlist.store import private_dir, store_dir


def spill_dir(data_dir: Path) -> Path:
    return store_dir(data_dir) / "spill"


def use_spill_dir(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """Point ``con``'s temporary files at :func:`spill_dir` (a writer's connections)."""
    con.execute("SET temp_directory = ?", [str(private_dir(spill_dir(data_dir)))])


def no_spill(con: duckdb.DuckDBPyConnection) -> None:
    """Let ``con`` write no temporary file anywhere (a reader's connections)."""
    con.execute("SET temp_directory = ''")


def scrub_spill(data_dir: Path) -> list[Path]:
    """Scrub the temporary files a killed writer left. Call with the writer lock held."""
    spill = spill_dir(data_dir)
    if not spill.is_dir():
        return []
    left = sorted(p for p in spill.rglob("*") if p.is_file())
    for path in left:
        scrub_unlink(path)
    return left
