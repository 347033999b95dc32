"""Apply one parsed file to its feed: whole or not at all.

Steps, each safe to be killed after: diff against the current snapshot -> guards ->
write a fresh content file -> one control transaction (version, change log, tombstones,
file event) -> delete the superseded content file. Until the control transaction commits
the previous version is current; afterwards the new one is, and anything no version
refers to is deleted by the next writer (:func:`recover`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from contracts.models import HotlistEntry
from hotlist.config import FeedGuards
from hotlist.faults import crash_point
from hotlist.keyed import PlateHasher
from hotlist.parse import FileRejected, ParsedFile
from hotlist.sources import LandedFile
from hotlist.store import FEEDS, content_path, feed_dir
from hotlist.store import control as ctl
from hotlist.store.content import read_entries, remove_unreferenced, write_content_file
from hotlist.store.diff import SnapshotDiff, diff_snapshot
from hotlist.store.state import write_state


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


def recover(con: duckdb.DuckDBPyConnection, data_dir: Path) -> list[Path]:
    """Bring state.json up to the committed versions, then delete content files no version
    refers to (leftovers of a killed run: an uncommitted new file, or a superseded one)."""
    write_state(con, data_dir)
    current = ctl.current_versions(con, data_dir)
    removed: list[Path] = []
    for feed in FEEDS:
        keep = current[feed].content_file if feed in current else None
        removed += remove_unreferenced(feed_dir(data_dir, feed), keep)
    return removed


def _previous_entries(current: ctl.FeedVersion | None, staged: pl.DataFrame) -> pl.DataFrame:
    if current is None:
        return staged.clear().select(pl.lit(None, pl.Int64).alias("entry_id"), *staged.columns)
    return read_entries(current.content_file).cast(dict(staged.schema), strict=False)  # type: ignore[arg-type]


def _check_guards(
    parsed: ParsedFile,
    diff: SnapshotDiff,
    previous_count: int,
    sha256: str,
    guards: FeedGuards,
    approved_sha256: str | None,
) -> None:
    candidates = max(parsed.record_lines - sum(parsed.excluded.values()), 1)
    share = parsed.row_errors / candidates
    if share > guards.max_row_error_share:
        raise FileRejected(
            "row-error-share",
            f"{parsed.name}: {parsed.row_errors} of {candidates} rows have errors"
            f" ({share:.1%} > {guards.max_row_error_share:.1%} allowed); the previous snapshot"
            " stays; see `hotlist status` and the file's issues",
        )
    removal_share = diff.removed.height / previous_count if previous_count else 0.0
    if removal_share > guards.max_removal_share and approved_sha256 != sha256:
        raise FileRejected(
            "mass-removal",
            f"{parsed.name}: would remove {diff.removed.height} of {previous_count} entries"
            f" ({removal_share:.1%} > {guards.max_removal_share:.1%} allowed). If upstream"
            f" really removed them, approve this exact file: --approve-mass-removal {sha256}",
        )


def apply_parsed(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    landed: LandedFile,
    parsed: ParsedFile,
    identity: list[str],
    guards: FeedGuards,
    approved_sha256: str | None,
    now: dt.datetime,
) -> ApplyResult:
    """Apply ``parsed`` (the content of ``landed``) as the next version of its feed.

    Raises :class:`FileRejected` for a replayed or older file and for the guards; the
    caller records the rejection. Call with the writer lock held.
    """
    feed = landed.feed
    done_at = ctl.applied_before(con, feed, landed.sha256)
    if done_at is not None:
        ctl.record_event(
            con,
            ctl.FileEvent(
                feed,
                landed.name,
                "duplicate",
                landed.sha256,
                landed.size,
                landed.mtime,
                parsed.extract_time,
                version=done_at,
                message=f"identical to the file applied at version {done_at}",
            ),
            now,
        )
        return ApplyResult(feed, landed.name, landed.sha256, "duplicate", done_at)
    last = ctl.last_extract_time(con, feed)
    if last is not None and parsed.extract_time <= last:
        raise FileRejected(
            "replay",
            f"{parsed.name}: extract time {parsed.extract_time.isoformat()} is not newer than"
            f" the applied snapshot's {last.isoformat()}: a replayed or older file",
        )
    current = ctl.current_versions(con, data_dir).get(feed)
    previous = _previous_entries(current, parsed.entries)
    first_id = ctl.next_value(con, "entry")
    diff = diff_snapshot(previous, parsed.entries, parsed.quarantine, identity, first_id)
    try:
        _check_guards(parsed, diff, previous.height, landed.sha256, guards, approved_sha256)
    except FileRejected as exc:
        exc.issues = parsed.issues
        raise
    HotlistEntry.validate(diff.entries)
    version = ctl.next_value(con, "version")
    path = content_path(data_dir, feed, version)
    write_content_file(path, diff.entries, parsed.quarantine)
    crash_point("after-content-file")
    hasher = PlateHasher(data_dir)
    tombstones = diff.removed.select(
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
            ("add", diff.added),
            ("change", diff.changed),
            ("remove", diff.removed["entry_id"]),
        )
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO versions VALUES (?, ?, 'ingest', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                version,
                feed,
                now,
                str(path.relative_to(data_dir)),
                landed.sha256,
                parsed.extract_time,
                diff.entries.height,
                diff.added.len(),
                diff.changed.len(),
                diff.removed.height,
                parsed.quarantine.height,
                diff.carried,
            ],
        )
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
                feed,
                landed.name,
                "applied",
                landed.sha256,
                landed.size,
                landed.mtime,
                parsed.extract_time,
                version=version,
                record_lines=parsed.record_lines,
                row_errors=parsed.row_errors,
                warnings=parsed.warnings,
                excluded=parsed.excluded,
            ),
            now,
            parsed.issues,
        )
        ctl.set_counter(con, "version", version)
        ctl.set_counter(con, "entry", max(first_id + diff.added.len() - 1, first_id - 1))
        crash_point("before-commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        path.unlink(missing_ok=True)
        raise
    finally:
        for view in ("_changes", "_tombstones"):
            con.unregister(view)
    crash_point("after-commit")
    write_state(con, data_dir)  # readers move to the new file before the old one goes
    crash_point("after-state")
    remove_unreferenced(feed_dir(data_dir, feed), path)
    return ApplyResult(
        feed,
        landed.name,
        landed.sha256,
        "applied",
        version,
        entries=diff.entries.height,
        added=diff.added.len(),
        changed=diff.changed.len(),
        removed=diff.removed.height,
        carried=diff.carried,
        quarantined=parsed.quarantine.height,
        warnings=parsed.warnings,
    )
