"""Purge: records removed upstream (or purged by hand) vanish from every local copy.

A purge run, under the writer lock:

1. collects the pending tombstones, and reads the plates of those records from the
   superseded content files that still hold them (in memory only: the search markers);
2. erases: deletes every superseded content file, every leftover in the landing and
   spill areas, and rewrites every current content file that has free blocks or deleted
   rows into a fresh file (``COPY FROM DATABASE``), fsynced and renamed into place;
3. verifies, independently of step 2 (:mod:`hotlist.verify`), every file under
   ``data_dir`` and ``PREFECT_HOME``;
4. only if verification passes, marks the tombstones purged, and writes a deletion report.

A run killed at any step is finished by the next one: nothing is marked purged before
it is verified. See ``docs/inventory.md`` for every place record content can rest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from hotlist.config import Settings
from hotlist.faults import crash_point
from hotlist.store import content_path, private_dir
from hotlist.store import control as ctl
from hotlist.store.apply import recover
from hotlist.store.content import connect_writer, seal
from hotlist.store.lock import writer_lock
from hotlist.store.state import write_state
from hotlist.verify import TRANSIENT_DIRS, Verification, verify


class PurgeIncomplete(Exception):
    """Verification found content of a removed record; the message lists the places."""

    def __init__(self, verification: Verification) -> None:
        places = "; ".join(f"{f.place}: {f.problem}" for f in verification.findings[:20])
        super().__init__(f"purge not verified, {len(verification.findings)} findings: {places}")
        self.verification = verification


@dataclass(frozen=True)
class PurgeResult:
    run_id: int
    purged: int
    files_erased: int
    verification: Verification
    report: Path | None


def default_prefect_home() -> Path:
    """PREFECT_HOME as Prefect resolves it, without importing Prefect."""
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()


def _markers(
    con: duckdb.DuckDBPyConnection, superseded: list[Path], pending: pl.DataFrame
) -> list[str]:
    """Plates of the pending records, read from the superseded files that hold them."""
    if pending.height == 0:
        return []
    found: list[str] = []
    con.register("_pending", pending.select("entry_id").to_arrow())
    for path in superseded:
        con.execute("ATTACH ? AS old (READ_ONLY)", [str(path)])
        try:
            rows = con.execute(
                "SELECT DISTINCT v FROM (SELECT plate AS v, entry_id FROM old.entries"
                " UNION ALL SELECT plate_raw, entry_id FROM old.entries)"
                " WHERE entry_id IN (SELECT entry_id FROM _pending) AND v IS NOT NULL"
            ).fetchall()
        finally:
            con.execute("DETACH old")
        found += [r[0] for r in rows]
    con.unregister("_pending")
    return sorted(set(found))


def _still_listed(
    con: duckdb.DuckDBPyConnection, current: list[Path], plates: list[str]
) -> set[str]:
    """Plates of removed records that another current entry still carries lawfully (the
    same plate under another record): finding them is no trace of the removed record.
    The removed record itself is checked by its entry id."""
    if not plates:
        return set()
    con.register("_plates", pl.DataFrame({"p": plates}).to_arrow())
    listed: set[str] = set()
    for path in current:
        con.execute("ATTACH ? AS cur (READ_ONLY)", [str(path)])
        try:
            listed |= {
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT v FROM (SELECT plate AS v FROM cur.entries UNION ALL"
                    " SELECT plate_raw FROM cur.entries) WHERE v IN (SELECT p FROM _plates)"
                ).fetchall()
            }
        finally:
            con.execute("DETACH cur")
    con.unregister("_plates")
    return listed


def _needs_rewrite(path: Path) -> bool:
    con = duckdb.connect(str(path), read_only=True)
    try:
        [size] = con.execute("PRAGMA database_size").fetchall()
        if int(size[5]):
            return True
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            [[logical]] = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()
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
    """Rewrite a DuckDB file into a fresh one (no free blocks, no deleted rows), swap it in."""
    fresh = path.with_name(path.name + ".tmp")
    fresh.unlink(missing_ok=True)
    con = connect_writer(fresh, data_dir)
    try:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(path)])
        [[name]] = con.execute("SELECT current_database()").fetchall()
        con.execute(f'COPY FROM DATABASE src TO "{name}"')
        con.execute("DETACH src")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    crash_point("before-swap")
    seal(fresh, path)


def _erase_transients(data_dir: Path) -> int:
    count = 0
    for rel in TRANSIENT_DIRS:
        root = data_dir / rel
        if root.exists():
            for path in sorted(root.rglob("*"), reverse=True):
                if path.is_file():
                    path.unlink()
                    count += 1
    return count


def purge(
    settings: Settings,
    prefect_home: Path | None = None,
    extra_roots: list[Path] | None = None,
    kind: str = "sweep",
    now: dt.datetime | None = None,
) -> PurgeResult:
    """Erase every pending removal from every local copy, verify, then mark and report."""
    data_dir = settings.data_dir
    started = now or dt.datetime.now(dt.UTC)
    with writer_lock(data_dir, wait_s=600):
        con = ctl.connect(data_dir)
        try:
            recover(con, data_dir)
            pending = con.sql("SELECT entry_id, feed FROM tombstones WHERE purged_at IS NULL").pl()
            live = ctl.live_content_files(con, data_dir)
            superseded = sorted(p for p, is_current in live.items() if not is_current)
            markers = _markers(con, [p for p in superseded if p.exists()], pending)
            current = [p for p, is_current in live.items() if is_current and p.exists()]
            markers = sorted(set(markers) - _still_listed(con, current, markers))
            crash_point("after-markers")
            from hotlist.publish import publish, superseded_versions
            from hotlist.store.state import build_state

            publish(con, data_dir, build_state(con, data_dir))
            erased = _erase_transients(data_dir)
            for old in superseded_versions(data_dir):
                shutil.rmtree(old)
                erased += 1
            for path in superseded:
                path.unlink(missing_ok=True)
                con.execute(
                    "UPDATE versions SET erased_at = ? WHERE content_file = ?",
                    [started, str(path.relative_to(data_dir))],
                )
                erased += 1
            crash_point("after-erase")
            for path, is_current in live.items():
                if is_current and path.exists() and _needs_rewrite(path):
                    rewrite_fresh(path, data_dir)
            roots = [*(extra_roots or [])]
            con.execute("CHECKPOINT")  # fold the control WAL in: no WAL may be left anywhere
            verification = verify(
                data_dir, prefect_home, markers, control=con, pending_ok=True, extra_roots=roots
            )
            run_id = ctl.next_value(con, "purge_run")
            finished = dt.datetime.now(dt.UTC)
            report: Path | None = None
            con.execute("BEGIN TRANSACTION")
            if verification.ok and pending.height:
                con.register("_pending", pending.select("entry_id").to_arrow())
                con.execute(
                    "UPDATE tombstones SET purged_at = ?, verified = ?"
                    " WHERE purged_at IS NULL AND entry_id IN (SELECT entry_id FROM _pending)",
                    [finished, f"purge run {run_id}: {verification.summary()}"],
                )
                con.unregister("_pending")
            con.execute(
                "INSERT INTO purge_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [
                    run_id, started, finished, kind, pending.height if verification.ok else 0,
                    erased, verification.ok, json.dumps(verification.as_dict()),
                ],
            )  # fmt: skip
            ctl.set_counter(con, "purge_run", run_id)
            con.execute("COMMIT")
            from hotlist.reports import write_run_report

            report = write_run_report(con, settings, run_id)
            write_state(con, data_dir)
        finally:
            con.close()
    if not verification.ok:
        raise PurgeIncomplete(verification)
    return PurgeResult(run_id, pending.height, erased, verification, report)


def manual_purge(
    settings: Settings,
    record_ids: list[str],
    reason: str,
    requested_by: str,
    prefect_home: Path | None = None,
) -> PurgeResult:
    """Purge NCIC records by NIC now (entered in error, court order), and keep them out:
    a later extract that still carries them does not load them until :func:`lift`."""
    data_dir = settings.data_dir
    now = dt.datetime.now(dt.UTC)
    with writer_lock(data_dir, wait_s=600):
        con = ctl.connect(data_dir)
        try:
            recover(con, data_dir)
            con.execute("BEGIN TRANSACTION")
            for record_id in record_ids:
                con.execute(
                    "INSERT INTO suppressions VALUES (?, ?, ?, ?, NULL, NULL)",
                    [record_id, reason, requested_by, now],
                )
            con.execute("COMMIT")
            for feed, current in ctl.current_versions(con, data_dir).items():
                _drop_records(
                    con,
                    data_dir,
                    feed,
                    current,
                    record_ids,
                    f"manual purge by {requested_by}: {reason}",
                    now,
                )
            write_state(con, data_dir)
        finally:
            con.close()
    return purge(settings, prefect_home, kind="manual", now=now)


def _drop_records(
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
    tmp.unlink(missing_ok=True)
    writer = connect_writer(tmp, data_dir)
    try:
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
                writer.execute(f"CREATE TABLE {table} AS SELECT * FROM prev.{table}")
        writer.execute("DETACH prev")
        writer.execute("CHECKPOINT")
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


def lift_purge(settings: Settings, record_ids: list[str], lifted_by: str) -> int:
    """End manual purges: the next extract that carries these NICs loads them again."""
    with writer_lock(settings.data_dir, wait_s=600):
        con = ctl.connect(settings.data_dir)
        try:
            con.register("_ids", pl.DataFrame({"record_id": record_ids}).to_arrow())
            [[count]] = con.execute(
                "SELECT count(*) FROM suppressions WHERE lifted_at IS NULL"
                " AND record_id IN (SELECT record_id FROM _ids)"
            ).fetchall()
            con.execute(
                "UPDATE suppressions SET lifted_at = ?, lifted_by = ? WHERE lifted_at IS NULL"
                " AND record_id IN (SELECT record_id FROM _ids)",
                [dt.datetime.now(dt.UTC), lifted_by],
            )
            return int(count)
        finally:
            con.close()
