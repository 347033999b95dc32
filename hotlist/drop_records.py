"""A manual purge's new version of a feed: the current content file copied without the
records purged by hand (and their quarantined lines), and a tombstone for each."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl

from hotlist.erase import NO_AUTO_CHECKPOINT
from hotlist.scrub import checkpoint_scrubbing_wal, scrub_unlink
from hotlist.sql import identifier, literal
from hotlist.store import content_path, private_dir
from hotlist.store import control as ctl
from hotlist.store.content import connect_writer, seal


def drop_records(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    feed: str,
    current: ctl.FeedVersion,
    record_ids: list[str],
    reason: str,
    now: dt.datetime,
) -> None:
    """Write the feed's next version without ``record_ids``; tombstone what goes."""
    probe = duckdb.connect(str(current.content_file), read_only=True)
    try:
        probe.register("_ids", pl.DataFrame({"record_id": record_ids}).to_arrow())
        gone = probe.sql(
            "SELECT entry_id, list, record_id, plate, state FROM entries"
            " WHERE record_id IN (SELECT record_id FROM _ids)"
        ).pl()
    finally:
        probe.close()
    if gone.height == 0:
        return
    from hotlist.keyed import PlateHasher

    version = ctl.next_value(con, "version")
    path = content_path(data_dir, feed, version)
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    scrub_unlink(tmp)
    writer = connect_writer(tmp, data_dir)
    try:
        writer.execute(f"SET checkpoint_threshold = {literal(NO_AUTO_CHECKPOINT)}")
        writer.execute("ATTACH ? AS prev (READ_ONLY)", [str(current.content_file)])
        writer.register("_gone", gone.select("entry_id").to_arrow())
        writer.register("_ids", pl.DataFrame({"record_id": record_ids}).to_arrow())
        writer.execute(
            "CREATE TABLE entries AS SELECT * FROM prev.entries"
            " WHERE entry_id NOT IN (SELECT entry_id FROM _gone)"
        )
        # A quarantined line of a purged record is content of it too.
        writer.execute(
            "CREATE TABLE quarantine AS SELECT * FROM prev.quarantine q WHERE NOT EXISTS"
            " (SELECT 1 FROM _ids WHERE contains(q.raw_line, _ids.record_id))"
        )
        # Unchanged lines of the next file are copied from this version, as from the last.
        for table in ("warnings", "parser"):
            if writer.sql(
                "SELECT 1 FROM duckdb_tables() WHERE database_name = 'prev' AND table_name = ?",
                params=[table],
            ).fetchall():
                name = identifier(table)
                writer.execute(f"CREATE TABLE {name} AS SELECT * FROM prev.{name}")  # noqa: S608 (quoted identifiers and constant fragments; values bound)
        writer.execute("DETACH prev")
        checkpoint_scrubbing_wal(writer, tmp)
    finally:
        writer.close()
    seal(tmp, path)
    hasher = PlateHasher(data_dir)
    con.execute("BEGIN TRANSACTION")
    con.execute(
        "INSERT INTO versions VALUES (?, ?, 'manual-purge', ?, ?, ?, ?, ?, 0, 0, ?, ?, 0, NULL)",
        [
            version, feed, now, str(path.relative_to(data_dir)), current.file_sha256,
            current.extract_time, current.entries - gone.height, gone.height, current.quarantined,
        ],
    )  # fmt: skip
    for entry_id, list_name, record_id, plate, state in gone.iter_rows():
        con.execute("INSERT INTO changes VALUES (?, ?, ?, 'remove')", [version, feed, entry_id])
        con.execute(
            "INSERT INTO tombstones VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            [entry_id, feed, list_name, record_id, hasher(plate, state), reason, version, now],
        )
    ctl.set_counter(con, "version", version)
    con.execute("COMMIT")
