"""Apply one snapshot file to its feed: whole or not at all.

Steps, each safe to be killed after: write the next version's content file
(:mod:`hotlist.store.write`: parse, copy unchanged lines, dedupe, diff, guards, seal) ->
one control transaction (version, change log, tombstones, file event) -> state.json.
Until the control transaction commits the previous version is current; afterwards the
new one is. A content file no version refers to (a kill before the commit) is scrubbed
by the next writer (:func:`hotlist.store.content.recover`); the superseded file stays
until the purge has verified and erased what it holds of removed records
(:mod:`hotlist.purge`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from hotlist.config import FeedGuards
from hotlist.faults import crash_point
from hotlist.keyed import PlateHasher
from hotlist.parse import FileRejected, Snapshot
from hotlist.sources import LandedFile
from hotlist.store import content_path
from hotlist.store import control as ctl
from hotlist.store import guards as gd
from hotlist.store.chunks import EntryContractBroken
from hotlist.store.content import discard
from hotlist.store.diff import Delta
from hotlist.store.state import write_state
from hotlist.store.stream import Staged
from hotlist.store.write import write_content_file

__all__ = ["ApplyResult", "EntryContractBroken", "apply_snapshot"]


@dataclass(frozen=True)
class ApplyResult:
    """What applying a file did, in counts and ids (never content)."""

    feed: str
    name: str
    sha256: str
    verdict: str  # applied | duplicate
    version: int
    entries: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    carried: int = 0
    quarantined: int = 0
    warnings: int = 0
    reused: int = 0  # lines unchanged since the previous version: copied, not parsed


class _Guards:
    """The guards, as the content file's writer calls them; remembers an approval used."""

    def __init__(
        self, snapshot: Snapshot, sha256: str, guards: FeedGuards, history: gd.History,
        approved: bool,
    ) -> None:  # fmt: skip
        self._snapshot, self._sha256, self._guards = snapshot, sha256, guards
        self._history, self._approved = history, approved
        self.overridden: list[gd.Refusal] = []

    def __call__(self, staged: Staged, delta: Delta) -> None:
        counts = gd.Counts(
            record_lines=self._snapshot.record_lines,
            excluded=sum(staged.excluded.values()),
            row_errors=staged.row_errors,
            removed=delta.removed.height,
            previous_entries=delta.previous_count,
        )
        found = gd.refusals(self._snapshot.name, self._sha256, counts, self._history, self._guards)
        standing = [r for r in found if not (r.approvable and self._approved)]
        if standing:
            exc = FileRejected(standing[0].rule, standing[0].message)
            exc.issues = staged.issues
            raise exc
        self.overridden = found


def apply_snapshot(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    landed: LandedFile,
    snapshot: Snapshot,
    identity: list[str],
    guards: FeedGuards,
    approved_sha256: str | None,
    now: dt.datetime,
) -> ApplyResult:
    """Apply ``snapshot`` (the content of ``landed``) as the next version of its feed.

    Raises :class:`FileRejected` for a replayed or older file and for the guards; the
    caller records the rejection. Call with the writer lock held.
    """
    feed = landed.feed
    done_at = ctl.applied_before(con, feed, landed.sha256)
    if done_at is not None:
        ctl.record_event(
            con,
            ctl.FileEvent(
                feed, landed.name, "duplicate", landed.sha256, landed.size, landed.mtime,
                snapshot.extract_time, version=done_at,
                message=f"identical to the file applied at version {done_at}",
            ),
            now,
        )  # fmt: skip
        return ApplyResult(feed, landed.name, landed.sha256, "duplicate", done_at)
    last = ctl.last_extract_time(con, feed)
    if last is not None and snapshot.extract_time <= last:
        raise FileRejected(
            "replay",
            f"{snapshot.name}: extract time {snapshot.extract_time.isoformat()} is not newer than"
            f" the applied snapshot's {last.isoformat()}: a replayed or older file",
        )
    current = ctl.current_versions(con, data_dir).get(feed)
    version = ctl.next_value(con, "version")
    path = content_path(data_dir, feed, version)
    check = _Guards(
        snapshot, landed.sha256, guards, ctl.feed_history(con, feed, gd.HISTORY_VERSIONS),
        approved=approved_sha256 == landed.sha256,
    )  # fmt: skip
    staged, delta = write_content_file(
        path,
        data_dir,
        current.content_file if current else None,
        snapshot,
        identity,
        check,
        ctl.active_suppressions(con) if "record_id" in identity else [],
    )
    crash_point("after-content-file")
    approval = (
        {
            "rule": gd.APPROVED_RULE,
            "message": "applied by --approve-mass-removal of this file's sha256 over the"
            f" guards {', '.join(r.rule for r in check.overridden)}",
        }
        if check.overridden
        else {}
    )
    _commit_version(con, data_dir, landed, snapshot, version, path, staged, delta, now, approval)
    crash_point("after-commit")
    write_state(con, data_dir)  # readers move to the new file; the purge erases the old one
    crash_point("after-state")
    return ApplyResult(
        feed, landed.name, landed.sha256, "applied", version, entries=delta.entries,
        added=delta.added.len(), changed=delta.changed.len(), removed=delta.removed.height,
        carried=delta.carried.len(), quarantined=staged.quarantine.height,
        warnings=staged.warnings, reused=staged.reused,
    )  # fmt: skip


def _commit_version(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    landed: LandedFile,
    snapshot: Snapshot,
    version: int,
    path: Path,
    staged: Staged,
    delta: Delta,
    now: dt.datetime,
    approval: dict[str, str],
) -> None:
    """One control transaction makes ``path`` the feed's version ``version``: the version,
    its id-only change log, the tombstones of what it removed, and the file event. On any
    failure the content file is scrubbed and the previous version stays current."""
    feed = landed.feed
    hasher = PlateHasher(data_dir)
    tombstones = delta.removed.select(
        pl.col("entry_id"),
        pl.lit(feed).alias("feed"),
        pl.col("list"),
        pl.col("record_id"),
        pl.struct("plate", "state")
        .map_elements(lambda s: hasher(s["plate"], s["state"]), return_dtype=pl.String)
        .alias("keyed_hash"),
        pl.lit(f"absent from snapshot {landed.sha256[:12]} ({landed.name})").alias("reason"),
    )
    changes = pl.concat(
        pl.DataFrame({"entry_id": ids.cast(pl.Int64)}).with_columns(pl.lit(op).alias("op"))
        for op, ids in (
            ("add", delta.added),
            ("change", delta.changed),
            ("remove", delta.removed["entry_id"]),
        )
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO versions VALUES (?, ?, 'ingest', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [
                version, feed, now, str(path.relative_to(data_dir)), landed.sha256,
                snapshot.extract_time, delta.entries, delta.added.len(), delta.changed.len(),
                delta.removed.height, staged.quarantine.height, delta.carried.len(),
            ],
        )  # fmt: skip
        con.register("_changes", changes)
        con.execute("INSERT INTO changes SELECT ?, ?, entry_id, op FROM _changes", [version, feed])
        con.register("_tombstones", tombstones)
        con.execute(
            "INSERT INTO tombstones SELECT entry_id, feed, list, record_id, keyed_hash, reason,"
            " ?, ?, NULL, NULL FROM _tombstones",
            [version, now],
        )
        ctl.record_event(
            con,
            ctl.FileEvent(
                feed, landed.name, "applied", landed.sha256, landed.size, landed.mtime,
                snapshot.extract_time, version=version, record_lines=snapshot.record_lines,
                row_errors=staged.row_errors, warnings=staged.warnings, excluded=staged.excluded,
                rule=approval.get("rule"), message=approval.get("message"),
            ),
            now,
            staged.issues,
        )  # fmt: skip
        ctl.set_counter(con, "version", version)
        crash_point("before-commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        discard(path)
        raise
    finally:
        for view in ("_changes", "_tombstones"):
            con.unregister(view)
