"""Anchors: the chain's head, written down outside the log, so that cutting records off
its end (or emptying it, or rewriting it) is detected.

Where an anchor is kept, and why there:

- ``data_dir/audit-anchors/anchors.sqlite``: always. Its own small database, because the
  control database is held by one writer at a time and an anchor must never wait for an
  ingest: SQLite takes a write for a few milliseconds from any process. Each anchor
  carries an HMAC with the audit key, so one cannot be forged or moved without it.
- the control database (table ``audit_anchors``): when the caller holds the writer lock
  and passes its connection (the purge's deletion report does);
- the deletion report (``summary.access_log_anchor``), and a Prefect artifact from the
  purge flow (:func:`publish_artifact`).

Kinds: ``anchor`` (the head at some moment), ``seal`` (a segment's last record, written
when the next month's segment starts) and ``expired`` (a segment's last record, written
just before retention deleted it: the chain then starts after it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb

from hotlist.audit.keys import load_key, mac, same
from hotlist.audit.segments import append_lock, head_of, segment_paths
from hotlist.chance import grouped
from hotlist.store import private_dir
from hotlist.timefmt import iso

#: An anchor is written at least this often while the log grows (by the writers).
ANCHOR_EVERY = dt.timedelta(hours=1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, segment TEXT NOT NULL, seq INTEGER NOT NULL,
    hmac TEXT NOT NULL, kind TEXT NOT NULL, place TEXT NOT NULL, mac TEXT NOT NULL
)
"""
_CONTROL_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_anchors (
    anchored_at VARCHAR NOT NULL, segment VARCHAR NOT NULL, seq BIGINT NOT NULL,
    hmac VARCHAR NOT NULL, kind VARCHAR NOT NULL, place VARCHAR NOT NULL, mac VARCHAR NOT NULL
)
"""


@dataclass(frozen=True)
class Anchor:
    at: str  # ISO 8601 UTC
    segment: str
    seq: int
    hmac: str
    kind: str  # anchor | seal | expired
    place: str  # what wrote it: "purge run 12", "hourly", "rotation", ...
    mac: str = ""

    def body(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "mac"}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def genuine(self, key: bytes) -> bool:
        return same(mac(key, self.body()), self.mac)

    def describe(self) -> str:
        return f"record {self.seq} of {self.segment or '(empty log)'} at {self.at} ({self.place})"


def store_path(data_dir: Path) -> Path:
    return data_dir / "audit-anchors" / "anchors.sqlite"


@contextlib.contextmanager
def _store(data_dir: Path) -> Iterator[sqlite3.Connection]:
    path = store_path(data_dir)
    private_dir(path.parent)
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        path.chmod(0o600)
        con.execute(_SCHEMA)
        yield con
    finally:
        con.close()


def record(
    data_dir: Path, key: bytes, segment: str, seq: int, hmac: str, kind: str, place: str,
    at: dt.datetime | None = None,
) -> Anchor:  # fmt: skip
    """Write one anchor to the anchors database (callers hold the append lock)."""
    when = iso(at or dt.datetime.now(dt.UTC))
    body = Anchor(when, segment, seq, hmac, kind, place)
    anchor = Anchor(**{**body.body(), "mac": mac(key, body.body())})
    with _store(data_dir) as con:
        con.execute(
            "INSERT INTO anchors (at, segment, seq, hmac, kind, place, mac)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [anchor.at, segment, seq, hmac, kind, place, anchor.mac],
        )
    return anchor


def _read_only(path: Path) -> sqlite3.Connection:
    """Open without creating anything (the path quoted: it may hold ``?``, ``#`` or ``%``)."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)


def _rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query on the anchors database; none while it does not exist, or while
    the process creating it has not created its table yet (another writer's first
    append: its file exists a moment before its schema)."""
    path = store_path(data_dir)
    if not path.exists():
        return []
    con = _read_only(path)
    try:
        made = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'anchors'"
        ).fetchone()
        return con.execute(sql).fetchall() if made else []
    finally:
        con.close()


def stored(data_dir: Path) -> list[Anchor]:
    """Every anchor in the anchors database, oldest first (none if it does not exist)."""
    rows = _rows(
        data_dir, "SELECT at, segment, seq, hmac, kind, place, mac FROM anchors ORDER BY id"
    )
    return [Anchor(*row) for row in rows]


def last_anchored(data_dir: Path) -> dt.datetime | None:
    """When the head was last anchored (None: never)."""
    rows = _rows(data_dir, "SELECT max(at) FROM anchors WHERE kind = 'anchor'")
    at = rows[0][0] if rows else None
    return dt.datetime.fromisoformat(at) if at else None


def anchor_files(
    data_dir: Path, place: str = "manual", con: duckdb.DuckDBPyConnection | None = None
) -> Anchor:
    """Record the file log's head now, and return it (:func:`hotlist.audit.log.anchor`
    chooses the log).

    ``con``: the control database connection of a caller that holds the writer lock; the
    anchor is then also written there. Cheap: one tail read and one SQLite insert."""
    key = load_key(data_dir)
    with append_lock(data_dir):
        head = head_of(segment_paths(data_dir))
        written = record(data_dir, key, head.segment, head.seq, head.hash, "anchor", place)
    if con is not None:
        to_control(con, written)
    return written


def to_control(con: duckdb.DuckDBPyConnection, anchor: Anchor) -> None:
    con.execute(_CONTROL_SCHEMA)
    con.execute(
        "INSERT INTO audit_anchors VALUES (?, ?, ?, ?, ?, ?, ?)",
        [anchor.at, anchor.segment, anchor.seq, anchor.hmac, anchor.kind, anchor.place,
         anchor.mac],
    )  # fmt: skip


def in_control(control: Path) -> tuple[list[Anchor], str | None]:
    """Anchors in the control database, or why they could not be read (a writer holds it)."""
    if not control.exists():
        return [], None
    try:
        con = duckdb.connect(str(control), read_only=True)
    except duckdb.Error as exc:
        return (
            [],
            f"control database not readable now ({type(exc).__name__}): its anchors were not checked",
        )
    try:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'audit_anchors'"
        ).fetchone()
        if not found or not found[0]:
            return [], None
        rows = con.execute(
            "SELECT anchored_at, segment, seq, hmac, kind, place, mac FROM audit_anchors"
            " ORDER BY anchored_at"
        ).fetchall()
    finally:
        con.close()
    return [Anchor(*row) for row in rows], None


def artifact_markdown(anchor: Anchor) -> str:
    return (
        "### Access log anchor\n\n"
        "| segment | record | HMAC-SHA256 | at (UTC) | by |\n|---|---|---|---|---|\n"
        f"| {anchor.segment or '(empty log)'} | {anchor.seq} | `{anchor.hmac}` | {anchor.at}"
        f" | {anchor.place} |\n"
    )


def publish_artifact(anchor: Anchor) -> Any:
    """A Prefect artifact (key ``access-log-anchor``) of the current flow run holding the
    anchor: a copy of the head outside this machine's disk. Call it inside a flow run."""
    from prefect.artifacts import create_markdown_artifact

    return create_markdown_artifact(
        key="access-log-anchor",
        markdown=grouped(artifact_markdown(anchor)),
        description=grouped(f"SB 34 access log head: record {anchor.seq}"),
    )
