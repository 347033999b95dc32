"""Purge: records removed upstream (or purged by hand) vanish from every local copy.

A purge run, under the writer lock:

1. scrubs what a killed writer left in the feed directories, and collects the pending
   tombstones, reading the plates of those records from the superseded content files
   that still hold them (in memory only: the search markers). Those files are the
   markers' only source, so they stay on disk until step 5;
2. erases: scrubs (overwrite, fsync, unlink: :mod:`hotlist.scrub`) every leftover in the
   landing and spill areas and every superseded published version, and rewrites every
   current content file that has free blocks or deleted rows into a fresh file
   (``COPY FROM DATABASE``), fsynced and renamed into place, the old one scrubbed;
3. verifies, independently of step 2 (:mod:`hotlist.verify`), every file under
   ``data_dir`` and ``PREFECT_HOME`` except the superseded content files (the source);
   a pending record whose content no file holds any more cannot be searched for, and
   fails the verification;
4. only if verification passes, marks the tombstones purged and the superseded files
   erased, in one transaction;
5. scrubs the superseded content files, and writes a deletion report.

A run killed before step 4 leaves the markers' source in place: the next run searches
for the same content. A run killed after it leaves superseded files no version refers
to: the next writer scrubs them first. See ``docs/inventory.md`` for every place record
content can rest, and what scrubbing does not reach.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from hotlist.config import Settings
from hotlist.faults import crash_point
from hotlist.scrub import checkpoint_scrubbing_wal, scrub_tree, scrub_unlink
from hotlist.sql import identifier, literal
from hotlist.store import FEEDS, content_path, feed_dir, private_dir
from hotlist.store import control as ctl
from hotlist.store.apply import recover
from hotlist.store.content import connect_writer, seal
from hotlist.store.lock import writer_lock
from hotlist.store.state import write_state
from hotlist.verify import TRANSIENT_DIRS, Verification, gone_ids, verify

#: A writer's WAL must not be checkpointed (and unlinked unscrubbed) behind its back.
NO_AUTO_CHECKPOINT = "1TB"


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


@dataclass(frozen=True)
class Markers:
    """What a purge searches for: the plates of the pending records, read from the
    superseded files, and the entry ids those files were found to hold."""

    plates: list[str]
    found: set[int]


def default_prefect_home() -> Path:
    """PREFECT_HOME as Prefect resolves it, without importing Prefect."""
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()


def _markers(
    con: duckdb.DuckDBPyConnection, superseded: list[Path], pending: pl.DataFrame
) -> tuple[Markers, list[Path]]:
    """Plates of the pending records, read from the superseded files that hold them; and
    the superseded files that could not be read (their content cannot be searched for)."""
    if pending.height == 0:
        return Markers([], set()), []
    plates: set[str] = set()
    found: set[int] = set()
    unreadable: list[Path] = []
    con.register("_pending", pending.select("entry_id").to_arrow())
    try:
        for path in superseded:
            try:
                con.execute("ATTACH ? AS old (READ_ONLY)", [str(path)])
            except duckdb.Error:
                unreadable.append(path)
                continue
            try:
                rows = con.execute(
                    "SELECT entry_id, plate, plate_raw FROM old.entries"
                    " WHERE entry_id IN (SELECT entry_id FROM _pending)"
                ).fetchall()
            except duckdb.Error:
                unreadable.append(path)
                rows = []
            finally:
                con.execute("DETACH old")
            for entry_id, plate, plate_raw in rows:
                found.add(int(entry_id))
                plates |= {v for v in (plate, plate_raw) if v}
    finally:
        con.unregister("_pending")
    return Markers(sorted(plates), found), unreadable


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
            [[logical]] = con.execute(f"SELECT count(*) FROM {identifier(table)}").fetchall()
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
    in, and scrub the old one (kept alive by a second name until the swap is done)."""
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
    old = path.with_name(path.name + ".old")
    scrub_unlink(old)
    os.link(path, old)
    seal(fresh, path)
    scrub_unlink(old)


def _scrub_unreferenced(con: duckdb.DuckDBPyConnection, data_dir: Path) -> int:
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


def _erase_transients(data_dir: Path) -> int:
    count = 0
    for rel in TRANSIENT_DIRS:
        root = data_dir / rel
        if root.exists():
            for path in sorted(root.rglob("*"), reverse=True):
                if path.is_file():
                    scrub_unlink(path)
                    count += 1
    return count


def _unsearchable(
    verification: Verification, gone: pl.DataFrame, markers: Markers, unreadable: list[Path]
) -> None:
    """Records awaiting purge whose content no file holds any more: a verification cannot
    search for them, so it cannot pass (it would be vacuous)."""
    missing = gone.filter(~pl.col("entry_id").is_in(list(markers.found)))
    for feed, count in missing.group_by("feed").len().sort("feed").iter_rows():
        verification.add(
            f"feed {feed}",
            f"{count} records awaiting purge cannot be searched for: no superseded content"
            " file holds them any more (erased before a purge verified them), so no"
            " verification can show their content is gone; they stay pending",
        )
    for path in unreadable:
        verification.add(path, "unverifiable: a superseded content file the purge reads its"
                         " markers from cannot be read")  # fmt: skip


def _scan_raw_device(
    verification: Verification, device: Path, plates: list[str], keep: list[Path]
) -> None:
    """Search the device under data_dir for the plates, outside the files that may hold
    them at this moment: the markers' source (scrubbed next) and the access log (which
    keeps queried plates by law, and is verified field by field)."""
    from hotlist.raw_device import excluded_ranges, scan_device

    try:
        hits = scan_device(device, plates, excluded_ranges(keep))
    except OSError as exc:
        verification.add(device, f"unverifiable: cannot be read ({exc.strerror})")
        return
    if hits:
        first = ", ".join(str(h.offset) for h in hits[:10])
        verification.add(
            device,
            f"raw blocks hold content of a removed record at {len(hits)} offsets"
            f" (first: {first}): a file deleted without scrubbing, or a copy outside data_dir",
        )


def purge(
    settings: Settings,
    prefect_home: Path | None = None,
    extra_roots: list[Path] | None = None,
    kind: str = "sweep",
    now: dt.datetime | None = None,
    raw_device: Path | None = None,
) -> PurgeResult:
    """Erase every pending removal from every local copy, verify, then mark and report.

    ``raw_device`` (default: ``[purge] raw_device``) is a block device or image to search
    too, before anything is marked purged (:mod:`hotlist.raw_device`)."""
    data_dir = settings.data_dir
    device = raw_device or getattr(settings.purge, "raw_device", None)
    started = now or dt.datetime.now(dt.UTC)
    with writer_lock(data_dir, wait_s=600):
        con = ctl.connect(data_dir)
        try:
            erased = _scrub_unreferenced(con, data_dir)
            recover(con, data_dir)
            pending = con.sql(
                "SELECT entry_id, feed, record_id FROM tombstones WHERE purged_at IS NULL"
            ).pl()
            gone = gone_ids(con).filter("pending")
            live = ctl.live_content_files(con, data_dir)
            superseded = sorted(p for p, is_current in live.items() if not is_current)
            markers, unreadable = _markers(con, [p for p in superseded if p.exists()], pending)
            current = [p for p, is_current in live.items() if is_current and p.exists()]
            plates = sorted(set(markers.plates) - _still_listed(con, current, markers.plates))
            record_ids = sorted(
                set(pending.filter(pl.col("entry_id").is_in(gone["entry_id"].implode()))
                    ["record_id"].drop_nulls().to_list())
            )  # fmt: skip
            crash_point("after-markers")
            from hotlist.publish import publish, superseded_versions
            from hotlist.store.state import build_state

            publish(con, data_dir, build_state(con, data_dir))
            erased += _erase_transients(data_dir)
            for old in superseded_versions(data_dir):
                scrub_tree(old)
                erased += 1
            crash_point("after-erase")
            for path in current:
                if _needs_rewrite(path):
                    rewrite_fresh(path, data_dir)
            con.execute("CHECKPOINT")  # fold the control WAL in: no WAL may be left anywhere
            verification = verify(
                data_dir,
                prefect_home,
                plates,
                control=con,
                pending_ok=True,
                extra_roots=[*(extra_roots or [])],
                record_ids=record_ids,
                sources=frozenset(superseded),
            )
            _unsearchable(verification, gone, markers, unreadable)
            if verification.ok and device is not None and plates:
                audit = sorted(p for p in (data_dir / "audit").rglob("*") if p.is_file())
                _scan_raw_device(verification, Path(device), plates, [*superseded, *audit])
            crash_point("after-verify")
            run_id = ctl.next_value(con, "purge_run")
            finished = dt.datetime.now(dt.UTC)
            if verification.ok:
                erased += len(superseded)
            con.execute("BEGIN TRANSACTION")
            if verification.ok and pending.height:
                con.register("_pending", pending.select("entry_id").to_arrow())
                con.execute(
                    "UPDATE tombstones SET purged_at = ?, verified = ?"
                    " WHERE purged_at IS NULL AND entry_id IN (SELECT entry_id FROM _pending)",
                    [finished, f"purge run {run_id}: {verification.summary()}"],
                )
                con.unregister("_pending")
            if verification.ok:
                for path in superseded:
                    con.execute(
                        "UPDATE versions SET erased_at = ? WHERE content_file = ?",
                        [finished, str(path.relative_to(data_dir))],
                    )
            con.execute(
                "INSERT INTO purge_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [
                    run_id, started, finished, kind, pending.height if verification.ok else 0,
                    erased, verification.ok, json.dumps(verification.as_dict()),
                ],
            )  # fmt: skip
            ctl.set_counter(con, "purge_run", run_id)
            con.execute("COMMIT")
            crash_point("after-mark")
            if verification.ok:
                # The markers' source goes last: everything else has verified clean.
                for path in superseded:
                    scrub_unlink(path)
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
                writer.execute(f"CREATE TABLE {name} AS SELECT * FROM prev.{name}")
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
