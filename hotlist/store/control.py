"""The control database: versions, id-only change log, tombstones and file events.

Nothing here is record content. Entries appear as opaque ids; removed NCIC records by
their NIC (the source record id a compliance reviewer needs); removed entries of every
source by a keyed hash of plate and state (HMAC with a local secret) so that "was this
plate removed?" can be answered without keeping the plate.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from hotlist.store import control_path, private_dir, store_dir
from hotlist.store.guards import APPROVED_RULE, History
from hotlist.store.lock import StoreBusy, holder
from hotlist.store.spill import no_spill, use_spill_dir

log = logging.getLogger("hotlist.store")

#: How long a reader waits for a writer to close the control database, and a writer for
#: readers to close it, before giving up with :class:`StoreBusy`.
WAIT_S = 120.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name VARCHAR NOT NULL, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    version BIGINT NOT NULL, feed VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, content_file VARCHAR NOT NULL,
    file_sha256 VARCHAR, extract_time TIMESTAMPTZ,
    entries BIGINT NOT NULL, added BIGINT NOT NULL, changed BIGINT NOT NULL,
    removed BIGINT NOT NULL, quarantined BIGINT NOT NULL, carried BIGINT NOT NULL,
    erased_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS changes (
    version BIGINT NOT NULL, feed VARCHAR NOT NULL, entry_id BIGINT NOT NULL, op VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (
    entry_id BIGINT NOT NULL, feed VARCHAR NOT NULL, list VARCHAR NOT NULL,
    record_id VARCHAR, keyed_hash VARCHAR NOT NULL, reason VARCHAR NOT NULL,
    detected_version BIGINT NOT NULL, detected_at TIMESTAMPTZ NOT NULL,
    purged_at TIMESTAMPTZ, verified VARCHAR
);
CREATE TABLE IF NOT EXISTS file_events (
    event_id BIGINT NOT NULL, occurred_at TIMESTAMPTZ NOT NULL, feed VARCHAR NOT NULL,
    name VARCHAR NOT NULL, sha256 VARCHAR, size BIGINT, mtime DOUBLE,
    extract_time TIMESTAMPTZ, verdict VARCHAR NOT NULL, rule VARCHAR, message VARCHAR,
    version BIGINT, record_lines BIGINT, row_errors BIGINT, warnings BIGINT,
    excluded VARCHAR
);
CREATE TABLE IF NOT EXISTS purge_runs (
    run_id BIGINT NOT NULL, started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ NOT NULL,
    kind VARCHAR NOT NULL, purged BIGINT NOT NULL, files_erased BIGINT NOT NULL,
    ok BOOLEAN NOT NULL, verification VARCHAR NOT NULL, report VARCHAR
);
CREATE TABLE IF NOT EXISTS suppressions (
    record_id VARCHAR NOT NULL, reason VARCHAR NOT NULL, requested_by VARCHAR NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL, lifted_at TIMESTAMPTZ, lifted_by VARCHAR
);
CREATE TABLE IF NOT EXISTS file_issues (
    event_id BIGINT NOT NULL, line_no BIGINT NOT NULL, field VARCHAR NOT NULL,
    rule VARCHAR NOT NULL, severity VARCHAR NOT NULL
);
"""

#: At most this many issue rows are kept per file (the counts are always complete).
MAX_ISSUES_PER_FILE = 10_000


@dataclass(frozen=True)
class FeedVersion:
    """The current version of one feed."""

    feed: str
    version: int
    content_file: Path
    created_at: dt.datetime
    extract_time: dt.datetime | None
    file_sha256: str | None
    entries: int
    quarantined: int


@dataclass(frozen=True)
class FileEvent:
    """What happened to one received file (or one failed fetch)."""

    feed: str
    name: str
    verdict: str  # applied | duplicate | rejected | fetch-failed
    sha256: str | None = None
    size: int | None = None
    mtime: float | None = None
    extract_time: dt.datetime | None = None
    rule: str | None = None
    message: str | None = None
    version: int | None = None
    record_lines: int | None = None
    row_errors: int | None = None
    warnings: int | None = None
    excluded: dict[str, int] | None = None


class NoStore(FileNotFoundError):
    """``data_dir`` holds no store: nothing was ever ingested there, or the path is wrong."""


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    return isinstance(exc, duckdb.IOException) and "Could not set lock" in str(exc)


def _open(
    data_dir: Path, read_only: bool, wait_s: float, on_wait: Callable[[str], None]
) -> duckdb.DuckDBPyConnection:
    """Open the control database; while another process holds a lock that conflicts, wait
    (telling ``on_wait`` once) up to ``wait_s`` seconds, then raise :class:`StoreBusy`."""
    path = control_path(data_dir)
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_conflict(exc):
                raise
        who = "a writer (ingest or purge)" if read_only else "a reader"
        held = holder(data_dir) if read_only else None
        if held:
            who += f", {held},"
        if time.monotonic() >= deadline:
            raise StoreBusy(
                f"{path} is still in use by {who} after {wait_s:g} s; try again when it"
                " has finished"
            ) from None
        if not told:
            on_wait(f"{path} is in use by {who}; waiting up to {wait_s:g} s for it")
            told = True
        time.sleep(0.25)


def connect(
    data_dir: Path, wait_s: float = WAIT_S, on_wait: Callable[[str], None] = log.warning
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the control database read-write. Hold the writer lock.

    A reader that has it open (:func:`read_only`) is waited for, up to ``wait_s`` seconds.
    """
    private_dir(store_dir(data_dir))
    con = _open(data_dir, False, wait_s, on_wait)
    use_spill_dir(con, data_dir)
    con.execute(SCHEMA)
    return con


@contextmanager
def read_only(
    data_dir: Path, wait_s: float = WAIT_S, on_wait: Callable[[str], None] = log.warning
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The control database, read-only, for readers (verify, reports, the CLI's lookups):
    never created, never written, no temporary file.

    While a writer has it open, waits up to ``wait_s`` seconds, saying so once through
    ``on_wait``, then raises :class:`StoreBusy` naming the writer. Raises :class:`NoStore`
    when ``data_dir`` holds no store. Keep the connection briefly: a writer waits for it.
    """
    path = control_path(data_dir)
    if not path.is_file():
        raise NoStore(f"no hotlist store at {data_dir}: {path} does not exist")
    con = _open(data_dir, True, wait_s, on_wait)
    try:
        no_spill(con)
        yield con
    finally:
        con.close()


def active_suppressions(con: duckdb.DuckDBPyConnection) -> list[str]:
    """NICs under a manual purge: never loaded again until the purge is lifted."""
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT record_id FROM suppressions WHERE lifted_at IS NULL ORDER BY 1"
        ).fetchall()
    ]


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first row of a query, fully fetched (DuckDB refuses new work on a connection
    while an earlier result is only partly read)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def next_value(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """The next value of a counter (not yet reserved; see :func:`set_counter`)."""
    row = one(con, "SELECT value FROM counters WHERE name = ?", [name])
    return 1 if row is None else int(row[0]) + 1


def set_counter(con: duckdb.DuckDBPyConnection, name: str, value: int) -> None:
    con.execute("DELETE FROM counters WHERE name = ?", [name])
    con.execute("INSERT INTO counters VALUES (?, ?)", [name, value])


def current_versions(con: duckdb.DuckDBPyConnection, data_dir: Path) -> dict[str, FeedVersion]:
    rows = con.execute(
        """
        SELECT feed, version, content_file, created_at, extract_time, file_sha256,
               entries, quarantined
        FROM versions QUALIFY row_number() OVER (PARTITION BY feed ORDER BY version DESC) = 1
        """
    ).fetchall()
    return {
        r[0]: FeedVersion(
            feed=r[0],
            version=int(r[1]),
            content_file=data_dir / r[2],
            created_at=r[3],
            extract_time=r[4],
            file_sha256=r[5],
            entries=int(r[6]),
            quarantined=int(r[7]),
        )
        for r in rows
    }


def live_content_files(con: duckdb.DuckDBPyConnection, data_dir: Path) -> dict[Path, bool]:
    """Content files not yet erased, each with whether it is its feed's current one."""
    current = {v.content_file for v in current_versions(con, data_dir).values()}
    return {
        data_dir / row[0]: data_dir / row[0] in current
        for row in con.execute(
            "SELECT content_file FROM versions WHERE erased_at IS NULL"
        ).fetchall()
    }


def feed_history(con: duckdb.DuckDBPyConnection, feed: str, versions: int) -> History:
    """The feed's last ``versions`` ingest versions that have a previous version, as a
    :class:`History`: the share of entries each removed, the share by
    which each file's record lines shrank, and the current version's record lines.
    Versions applied by an approval of a mass removal are left out."""
    rows = con.execute(
        """
        WITH all_versions AS (
            SELECT version, kind, removed, lag(entries) OVER (ORDER BY version) AS before
            FROM versions WHERE feed = ?
        ), ingests AS (
            SELECT a.version, a.removed, a.before, e.record_lines, e.rule,
                   lag(e.record_lines) OVER (ORDER BY a.version) AS lines_before
            FROM all_versions a
            LEFT JOIN file_events e
              ON e.feed = ? AND e.version = a.version AND e.verdict = 'applied'
            WHERE a.kind = 'ingest'
        )
        SELECT version, removed / nullif(before, 0), 1 - record_lines / nullif(lines_before, 0),
               record_lines, rule IS NOT DISTINCT FROM ?
        FROM ingests ORDER BY version DESC
        """,
        [feed, feed, APPROVED_RULE],
    ).fetchall()
    kept = [r for r in rows[:versions] if not r[4]]
    return History(
        removal_shares=tuple(float(r[1]) for r in kept if r[1] is not None),
        shrink_shares=tuple(float(r[2]) for r in kept if r[2] is not None),
        previous_record_lines=int(rows[0][3]) if rows and rows[0][3] is not None else None,
    )


def last_extract_time(con: duckdb.DuckDBPyConnection, feed: str) -> dt.datetime | None:
    row = one(
        con, "SELECT max(extract_time) FROM versions WHERE feed = ? AND kind = 'ingest'", [feed]
    )
    return None if row is None else row[0]


def applied_before(con: duckdb.DuckDBPyConnection, feed: str, sha256: str) -> int | None:
    """The version at which a file with this content hash was applied, if ever."""
    row = one(
        con, "SELECT max(version) FROM versions WHERE feed = ? AND file_sha256 = ?", [feed, sha256]
    )
    return None if row is None or row[0] is None else int(row[0])


def seen_unchanged(
    con: duckdb.DuckDBPyConnection, feed: str, name: str, size: int, mtime: float
) -> bool:
    """True when the last file taken for ``feed`` had this name, size and mtime."""
    row = one(
        con,
        """
        SELECT name, size, mtime FROM file_events
        WHERE feed = ? AND verdict IN ('applied', 'duplicate')
        ORDER BY event_id DESC LIMIT 1
        """,
        [feed],
    )
    return row is not None and (row[0], row[1], row[2]) == (name, size, mtime)


def record_event(
    con: duckdb.DuckDBPyConnection,
    event: FileEvent,
    at: dt.datetime,
    issues: Any = None,
) -> int:
    """Append a file event (and up to MAX_ISSUES_PER_FILE issue rows); return its id."""
    event_id = next_value(con, "event")
    con.execute(
        "INSERT INTO file_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            event_id,
            at,
            event.feed,
            event.name,
            event.sha256,
            event.size,
            event.mtime,
            event.extract_time,
            event.verdict,
            event.rule,
            event.message,
            event.version,
            event.record_lines,
            event.row_errors,
            event.warnings,
            json.dumps(event.excluded) if event.excluded is not None else None,
        ],
    )
    set_counter(con, "event", event_id)
    if issues is not None and issues.height:
        kept = issues.head(MAX_ISSUES_PER_FILE)
        con.register("_issues", kept)
        con.execute(
            "INSERT INTO file_issues SELECT ?, line_no, field, rule, severity FROM _issues",
            [event_id],
        )
        con.unregister("_issues")
    return event_id


def last_events(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Per feed: the last event, and the last good (applied or duplicate) one."""
    out: dict[str, dict[str, Any]] = {}
    for feed, name, verdict, rule, message, at, sha in con.execute(
        """
        SELECT feed, name, verdict, rule, message, occurred_at, sha256 FROM file_events
        QUALIFY row_number() OVER (PARTITION BY feed ORDER BY event_id DESC) = 1
        """
    ).fetchall():
        out[feed] = {
            "name": name,
            "verdict": verdict,
            "rule": rule,
            "message": message,
            "at": at.isoformat(),
            "sha256": sha,
        }
    return out
