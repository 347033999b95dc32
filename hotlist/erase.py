"""The purge's erasure steps: every one scrubs (overwrite, fsync, unlink), never merely
unlinks, a file that held record content (:mod:`hotlist.scrub`)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from hotlist.faults import crash_point
from hotlist.scrub import checkpoint_scrubbing_wal, scrub_fd, scrub_unlink
from hotlist.sql import identifier, literal
from hotlist.store import FEEDS, feed_dir
from hotlist.store import control as ctl
from hotlist.store.content import connect_writer, seal
from hotlist.verify import TRANSIENT_DIRS

#: A writer's WAL must not be checkpointed (and unlinked unscrubbed) behind its back.
NO_AUTO_CHECKPOINT = "1TB"


def needs_rewrite(path: Path) -> bool:
    con = duckdb.connect(str(path), read_only=True)
    try:
        [size] = con.execute("PRAGMA database_size").fetchall()
        if int(size[5]):
            return True
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            [[logical]] = con.execute(f"SELECT count(*) FROM {identifier(table)}").fetchall()  # noqa: S608 (quoted identifiers and constant fragments; values bound)
            [[physical]] = con.execute(
                "SELECT coalesce(sum(count), 0) FROM pragma_storage_info(?)"
                " WHERE column_id = 0 AND segment_type <> 'VALIDITY'",
                [table],
            ).fetchall()
            if int(logical) != int(physical):
                return True
        return False
    finally:
        con.close()


def rewrite_fresh(path: Path, data_dir: Path) -> None:
    """Rewrite a DuckDB file into a fresh one (no free blocks, no deleted rows), swap it
    in, and scrub the old one."""
    fresh = path.with_name(path.name + ".tmp")
    scrub_unlink(fresh)
    con = connect_writer(fresh, data_dir)
    try:
        con.execute(f"SET checkpoint_threshold = {literal(NO_AUTO_CHECKPOINT)}")
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(path)])
        [[name]] = con.execute("SELECT current_database()").fetchall()
        con.execute(f"COPY FROM DATABASE src TO {identifier(name)}")
        con.execute("DETACH src")
        checkpoint_scrubbing_wal(con, fresh)
    finally:
        con.close()
    crash_point("before-swap")
    # The old file stays open across the swap, so it can be scrubbed once it has no name
    # (a second name would be scrubbed, and zero the live file, by a writer's recover).
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        seal(fresh, path)
        scrub_fd(fd)
    finally:
        os.close(fd)


def scrub_unreferenced(con: duckdb.DuckDBPyConnection, data_dir: Path) -> int:
    """Scrub what a killed writer left in the feed directories (a superseded file whose
    erase was committed, a half-written version, the old name of a rewritten file), before
    ``recover`` would merely unlink it. A second name of a live file is only unlinked."""
    live = set(ctl.live_content_files(con, data_dir))
    inodes = {(s.st_dev, s.st_ino) for p in live if p.exists() for s in [p.stat()]}
    count = 0
    for feed in FEEDS:
        directory = feed_dir(data_dir, feed)
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path in live or not path.is_file() or path.is_symlink():
                continue
            info = path.stat()
            if (info.st_dev, info.st_ino) in inodes:
                path.unlink()
            else:
                scrub_unlink(path)
            count += 1
    return count


def erase_transients(data_dir: Path) -> int:
    count = 0
    for rel in TRANSIENT_DIRS:
        root = data_dir / rel
        if root.exists():
            for path in sorted(root.rglob("*"), reverse=True):
                if path.is_file():
                    scrub_unlink(path)
                    count += 1
    return count
