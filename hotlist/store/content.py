"""Content files: one immutable DuckDB file per feed version (entries and quarantine)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl

from hotlist.sources.landing import fsync_dir
from hotlist.store import private_dir


def write_content_file(path: Path, entries: pl.DataFrame, quarantine: pl.DataFrame) -> None:
    """Write a fresh content file under a temporary name, fsync it, rename it into place."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.register("_entries", entries.to_arrow())
        con.execute("CREATE TABLE entries AS SELECT * FROM _entries")
        con.register("_quarantine", quarantine.to_arrow())
        con.execute("CREATE TABLE quarantine AS SELECT * FROM _quarantine")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_entries(path: Path) -> pl.DataFrame:
    """All entries of a content file (read-only open; never blocks a writer)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        frame: pl.DataFrame = con.sql("SELECT * FROM entries").pl()
        return frame
    finally:
        con.close()


def remove_unreferenced(feed_directory: Path, keep: Path | None) -> list[Path]:
    """Delete every file of a feed directory but ``keep``: superseded versions, leftovers."""
    removed: list[Path] = []
    if not feed_directory.exists():
        return removed
    for path in sorted(feed_directory.iterdir()):
        if keep is not None and path == keep:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        fsync_dir(feed_directory)
    return removed
