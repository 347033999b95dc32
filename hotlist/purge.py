"""Purge: records removed upstream (or purged by hand) vanish from every local copy.

A purge run, under the writer lock:

1. scrubs what a killed writer left in the feed directories, and collects the pending
   tombstones, reading the plates of those records from the superseded content files
   that still hold them (in memory only: the search markers). Those files are the
   markers' only source, so they stay on disk until step 5;
2. erases: scrubs (overwrite, fsync, unlink: :mod:`hotlist.scrub`) every leftover in the
   landing and spill areas and every superseded published version (under
   ``[serve] published_dir``), announces the new version to the replicas, and rewrites every
   current content file that has free blocks or deleted rows into a fresh file
   (``COPY FROM DATABASE``), fsynced and renamed into place, the old one scrubbed;
3. verifies, independently of step 2 (:mod:`hotlist.verify`), every file under
   ``data_dir``, the published directory and ``PREFECT_HOME`` except the superseded
   content files (the source); a pending record whose content no file holds any more
   cannot be searched for, and fails the verification. With PostgreSQL, every live
   ``hotlist serve`` replica must also confirm that it serves the new version (its
   memory no longer holds the old one): :mod:`hotlist.purge_replicas`;
4. only if verification passes, marks the tombstones purged and the superseded files
   erased, in one transaction;
5. scrubs the superseded content files, and writes a deletion report.

A run killed before step 4 leaves the markers' source in place: the next run searches
for the same content. A run killed after it leaves superseded files no version refers
to: the next writer scrubs them first. See ``docs/inventory.md`` for every place record
content can rest, and what scrubbing does not reach.

A manual purge first writes each feed's next version without the records
(:mod:`hotlist.drop_records`), then runs the purge. What the run adds to its verification
is in :mod:`hotlist.purge_findings`; the erasure steps are in :mod:`hotlist.erase`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hotlist import audit, report_seals
from hotlist.chance import grouped
from hotlist.config import Settings
from hotlist.drop_records import drop_records
from hotlist.erase import erase_transients, needs_rewrite, rewrite_fresh, scrub_unreferenced
from hotlist.faults import crash_point
from hotlist.markers import collect_markers, still_listed
from hotlist.purge_findings import scan_raw_device, unsearchable
from hotlist.purge_replicas import announce_version, confirm_replicas
from hotlist.scan import MIN_SCAN_LEN
from hotlist.scrub import scrub_tree, scrub_unlink
from hotlist.serve import versions as served
from hotlist.store import control as ctl
from hotlist.store import control_path
from hotlist.store.content import recover
from hotlist.store.lock import writer_lock
from hotlist.store.state import write_state
from hotlist.verify import Verification, gone_ids, verify


class PurgeIncomplete(Exception):
    """Verification found content of a removed record; the message lists the places."""

    def __init__(self, verification: Verification) -> None:
        places = "; ".join(f"{f.place}: {f.problem}" for f in verification.findings[:20])
        # Grouped (16,817): the message is kept in Prefect's database with the flow run.
        super().__init__(
            grouped(f"purge not verified, {len(verification.findings)} findings: {places}")
        )
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
    device = raw_device or settings.purge.raw_device
    started = now or dt.datetime.now(dt.UTC)
    with writer_lock(data_dir, wait_s=600):
        con = ctl.connect(data_dir)
        try:
            erased = scrub_unreferenced(con, data_dir)
            recover(con, data_dir)
            pending = con.sql(
                "SELECT entry_id, feed, record_id FROM tombstones WHERE purged_at IS NULL"
            ).pl()
            gone = gone_ids(con).filter("pending")
            live = ctl.live_content_files(con, data_dir)
            superseded = sorted(p for p, is_current in live.items() if not is_current)
            markers, unreadable = collect_markers(
                con, [p for p in superseded if p.exists()], pending
            )
            current = [p for p, is_current in live.items() if is_current and p.exists()]
            plates = sorted(set(markers.plates) - still_listed(con, current, markers.plates))
            record_ids = sorted(
                set(pending.filter(pl.col("entry_id").is_in(gone["entry_id"].implode()))
                    ["record_id"].drop_nulls().to_list())
            )  # fmt: skip
            crash_point("after-markers")
            from hotlist.publish import publish, superseded_versions
            from hotlist.store.state import build_state

            version = publish(con, data_dir, settings.published_dir, build_state(con, data_dir))
            erased += erase_transients(data_dir)
            for old in superseded_versions(settings.published_dir):
                scrub_tree(old)
                erased += 1
            erased_at = time.monotonic()
            crash_point("after-erase")
            # The replicas load the new version while the verification runs.
            url = settings.serve.database_url
            replicas = announce_version(url, version) if url and version else None
            for path in current:
                if needs_rewrite(path):
                    rewrite_fresh(path, data_dir)
            con.execute("CHECKPOINT")  # fold the control WAL in: no WAL may be left anywhere
            # A torn last line of the access log (a crash mid-append) is not a record, so
            # it would be searched as raw bytes: move it to its evidence file first, where
            # the element queried stands in its own, exempt field.
            audit.recover_torn_tail(data_dir)
            verification = verify(
                data_dir,
                prefect_home,
                plates,
                control=con,
                pending_ok=True,
                extra_roots=[*(extra_roots or [])],
                record_ids=record_ids,
                sources=frozenset(superseded),
                published=settings.published_dir,
                access_log_url=settings.serve.database_url,
            )
            unsearchable(verification, gone, markers, unreadable)
            if replicas is not None:
                confirm_replicas(replicas, settings.purge.replica_wait_s, verification)
            if verification.ok and device is not None and plates:
                log_files = sorted(p for p in (data_dir / "audit").rglob("*") if p.is_file())
                # Verified where they lie: the control database (every text column
                # searched, the reports' sealed texts inside) and the run reports, sealed
                # or read as written; on the device their blocks hold what their files do.
                reports = report_seals.clean_reports(
                    data_dir / "reports",
                    [p for p in plates if len(p) >= MIN_SCAN_LEN],
                    report_seals.seals(con),
                )
                keep = [*superseded, *log_files, control_path(data_dir), *reports]
                scan_raw_device(verification, Path(device), plates, keep, data_dir)
            # A server's lookups look at CURRENT.json at most every RECHECK_S: nothing is
            # marked purged until every server has looked since the erasure (the
            # verification takes longer as a rule; this makes it a rule).
            time.sleep(max(0.0, erased_at + 2 * served.RECHECK_S - time.monotonic()))
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
                drop_records(
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
