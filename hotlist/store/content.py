"""Content files: one immutable DuckDB file per feed version (entries and quarantine).

Every file of a feed directory holds record content, and so does DuckDB's spill
directory while a writer sorts or joins more than its memory limit: each is scrubbed
(:mod:`hotlist.scrub`: overwritten, fsynced, unlinked), never just unlinked.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from hotlist.scrub import scrub_unlink
from hotlist.sources.landing import fsync_dir
from hotlist.sql import literal
from hotlist.store import FEEDS, feed_dir
from hotlist.store import control as ctl
from hotlist.store.spill import scrub_spill, use_spill_dir
from hotlist.store.state import write_state

#: DuckDB may use this much memory per writer before it spills (:mod:`hotlist.store.spill`).
MEMORY_LIMIT = "512MB"


def connect_writer(path: Path, data_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(f"SET memory_limit = {literal(MEMORY_LIMIT)}")
    con.execute("SET preserve_insertion_order = false")
    # The WAL is scrubbed at the one checkpoint (scrub.checkpoint_scrubbing_wal): DuckDB
    # must not checkpoint, and unlink it unscrubbed, by itself before that.
    con.execute("SET checkpoint_threshold = '1TB'")
    use_spill_dir(con, data_dir)
    return con


def remove_unreferenced(feed_directory: Path, keep: set[Path]) -> list[Path]:
    """Scrub every file of a feed directory not in ``keep``: leftovers of a killed run.

    A second name of a kept file (the same inode) is only unlinked: scrubbing it would zero
    the kept version."""
    removed: list[Path] = []
    if not feed_directory.exists():
        return removed
    kept = {(s.st_dev, s.st_ino) for p in keep if p.exists() for s in [p.stat()]}
    for path in sorted(feed_directory.iterdir()):
        if path in keep or not path.is_file() or path.is_symlink():
            continue
        info = path.stat()
        if (info.st_dev, info.st_ino) in kept:
            path.unlink()
        else:
            scrub_unlink(path)
        removed.append(path)
    if removed:
        fsync_dir(feed_directory)
    return removed


def discard(path: Path) -> None:
    """Scrub a content file that will not become a version, with its write-ahead log."""
    scrub_unlink(path)
    scrub_unlink(path.with_name(path.name + ".wal"))


def seal(tmp: Path, path: Path) -> None:
    """fsync a finished DuckDB file written as ``tmp``, make it private, rename it to ``path``."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    scrub_unlink(tmp.with_name(tmp.name + ".wal"))
    scrub_unlink(path.with_name(path.name + ".wal"))
    fsync_dir(path.parent)


def recover(con: duckdb.DuckDBPyConnection, data_dir: Path) -> list[Path]:
    """Bring state.json up to the committed versions, then scrub the content files no
    version refers to and DuckDB's spill files: leftovers of a killed run. Superseded
    versions stay until the purge has verified and erased what they hold of removed
    records. Call with the writer lock held."""
    write_state(con, data_dir)
    keep = set(ctl.live_content_files(con, data_dir))
    removed: list[Path] = []
    for feed in FEEDS:
        removed += remove_unreferenced(feed_dir(data_dir, feed), keep)
    return removed + scrub_spill(data_dir)
