"""Content files: one immutable DuckDB file per feed version (entries and quarantine)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from hotlist.sources.landing import fsync_dir
from hotlist.store import private_dir, store_dir

#: DuckDB may use this much memory per writer before it spills to ``store/spill``.
MEMORY_LIMIT = "512MB"


def spill_dir(data_dir: Path) -> Path:
    return store_dir(data_dir) / "spill"


def connect_writer(path: Path, data_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    spill = private_dir(spill_dir(data_dir))
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET temp_directory = ?", [str(spill)])
    return con


def remove_unreferenced(feed_directory: Path, keep: set[Path]) -> list[Path]:
    """Delete every file of a feed directory not in ``keep``: leftovers of a killed run."""
    removed: list[Path] = []
    if not feed_directory.exists():
        return removed
    for path in sorted(feed_directory.iterdir()):
        if path in keep:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        fsync_dir(feed_directory)
    return removed


def seal(tmp: Path, path: Path) -> None:
    """fsync a finished DuckDB file written as ``tmp``, make it private, rename it to ``path``."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    fsync_dir(path.parent)
