"""Consumers (patrol systems, ALPR integrations) and their agencies: who may receive data.

SB 34 lets a California public agency share ALPR information only with another
California public agency: consumers of a federal, out-of-state or private agency are
registered (so their refusals are logged against a name) but never receive data.

Keys are 32 random bytes shown once; only their SHA-256 is stored. This module holds the
registry's types and its local implementation, a SQLite file
(``data_dir/serve/consumers.sqlite``): the API and the CLI both write to it (acks,
registrations), and SQLite's locking serializes them without the store's writer. With
``[serve] database_url`` the registry lives in PostgreSQL instead
(:mod:`hotlist.serve.registry_pg`); :func:`hotlist.serve.registry.registry_for` picks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from hotlist.access import is_california_ori
from hotlist.store import private_dir


class AgencyKind(StrEnum):
    CA_LOCAL = "ca-local"
    CA_STATE = "ca-state"
    FEDERAL = "federal"
    OUT_OF_STATE = "out-of-state"
    PRIVATE = "private"

    @property
    def may_receive(self) -> bool:
        """SB 34 (Civil Code 1798.90.55(b)): California public agencies only."""
        return self in (AgencyKind.CA_LOCAL, AgencyKind.CA_STATE)


@dataclass(frozen=True)
class Consumer:
    name: str
    agency_ori: str
    agency_name: str
    agency_kind: AgencyKind
    created_at: str
    revoked_at: str | None
    acked_version: int | None
    acked_at: str | None


SCHEMA = """
CREATE TABLE IF NOT EXISTS consumers (
    name TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, agency_ori TEXT NOT NULL,
    agency_name TEXT NOT NULL, agency_kind TEXT NOT NULL, created_at TEXT NOT NULL,
    revoked_at TEXT, acked_version INTEGER, acked_at TEXT
);
CREATE TABLE IF NOT EXISTS acks (consumer TEXT NOT NULL, version INTEGER NOT NULL, at TEXT NOT NULL);
"""


class ConsumerError(Exception):
    """A registry operation cannot be done; the message says why."""


class KeysUnavailable(Exception):
    """The server cannot tell which keys are valid now (its registry is out of reach):
    it refuses every request rather than honour a key that may have been revoked."""


#: Seconds the API's key cache trusts its last look at the registry files (a revoked key
#: is refused within a second: this is well inside it).
RECHECK_S = 0.1
#: Seconds after which the key cache reads the registry again even though its files look
#: unchanged: a file's modification time is only as fine as the kernel's clock tick on
#: many kernels (4 ms on Debian 12's), so a revocation written in the same tick as the
#: cache's last look leaves the same stamp, and would otherwise go unseen until the
#: next change.
REREAD_S = 0.5


def registry_path(data_dir: Path) -> Path:
    return private_dir(data_dir / "serve") / "consumers.sqlite"


@contextmanager
def private_sqlite(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """A serving-state SQLite file: 0600 from its creation, WAL, deleted rows overwritten,
    ``schema`` applied (idempotent)."""
    fresh = not path.exists()
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        if fresh:
            path.chmod(0o600)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA secure_delete=ON")
        con.executescript(schema)
        yield con
    finally:
        con.close()


@contextmanager
def registry(data_dir: Path) -> Iterator[sqlite3.Connection]:
    with private_sqlite(registry_path(data_dir), SCHEMA) as con:
        yield con


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new API key: 32 random bytes, URL-safe, prefixed so a leaked one is recognizable."""
    return "hl_" + secrets.token_urlsafe(32)


def check_agency(ori: str, kind: AgencyKind) -> None:
    """A consumer said to be of a California agency must carry a California ORI."""
    if kind.may_receive and not is_california_ori(ori):
        raise ConsumerError(
            f"a {kind.value} agency's ORI is 9 characters starting CA; {ori!r} is not"
        )


def now_iso() -> str:
    """The registry's timestamps: ISO 8601 UTC text, in SQLite and PostgreSQL alike."""
    return dt.datetime.now(dt.UTC).isoformat()


def row_consumer(r: tuple[object, ...]) -> Consumer:
    """A consumer from a row of :data:`COLUMNS` (the same in SQLite and PostgreSQL)."""
    return Consumer(
        name=str(r[0]), agency_ori=str(r[1]), agency_name=str(r[2]),
        agency_kind=AgencyKind(str(r[3])), created_at=str(r[4]),
        revoked_at=None if r[5] is None else str(r[5]),
        acked_version=None if r[6] is None else int(str(r[6])),
        acked_at=None if r[7] is None else str(r[7]),
    )  # fmt: skip


COLUMNS = (
    "name, agency_ori, agency_name, agency_kind, created_at, revoked_at, acked_version, acked_at"
)


def add(data_dir: Path, name: str, ori: str, agency_name: str, kind: AgencyKind) -> str:
    """Register a consumer; return its API key (shown once, stored hashed).

    A consumer said to be of a California agency must carry a California ORI: the API
    refuses any other (:func:`hotlist.access.refusal`), so a key issued for one would be
    a key that never works."""
    check_agency(ori, kind)
    key = new_key()
    with registry(data_dir) as con:
        try:
            con.execute(
                "INSERT INTO consumers VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                (name, hash_key(key), ori, agency_name, kind.value, now_iso()),
            )
        except sqlite3.IntegrityError:
            raise ConsumerError(f"a consumer named {name!r} exists already") from None
    return key


def rotate(data_dir: Path, name: str) -> str:
    key = new_key()
    with registry(data_dir) as con:
        cur = con.execute(
            "UPDATE consumers SET key_hash = ? WHERE name = ? AND revoked_at IS NULL",
            (hash_key(key), name),
        )
        if cur.rowcount != 1:
            raise ConsumerError(f"no active consumer named {name!r}")
    return key


def revoke(data_dir: Path, name: str) -> None:
    with registry(data_dir) as con:
        cur = con.execute(
            "UPDATE consumers SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (now_iso(), name),
        )
        if cur.rowcount != 1:
            raise ConsumerError(f"no active consumer named {name!r}")


def all_consumers(data_dir: Path) -> list[Consumer]:
    with registry(data_dir) as con:
        rows = con.execute(f"SELECT {COLUMNS} FROM consumers ORDER BY name").fetchall()  # noqa: S608 (a constant column list)
    return [row_consumer(r) for r in rows]


def by_key(data_dir: Path, key: str) -> Consumer | None:
    with registry(data_dir) as con:
        row = con.execute(
            f"SELECT {COLUMNS} FROM consumers WHERE key_hash = ?",  # noqa: S608 (constant columns)
            (hash_key(key),),
        ).fetchone()
    return None if row is None else row_consumer(row)


def ack(data_dir: Path, key: str, version: int) -> bool:
    """The consumer whose active key is ``key`` confirms the version it now holds (never
    moves backwards; each advance is kept, so a report can tell when this copy dropped a
    given removal). False, and nothing recorded, when the key is no longer active: a
    key revoked or replaced after the gate admitted the request cannot vouch for a copy."""
    with registry(data_dir) as con:
        con.execute("BEGIN IMMEDIATE")
        now = now_iso()  # read under the write lock: advances are dated in their order
        row = con.execute(
            "SELECT name, acked_version FROM consumers WHERE key_hash = ? AND revoked_at IS NULL",
            (hash_key(key),),
        ).fetchone()
        if row is not None and (row[1] is None or version > int(row[1])):
            con.execute(
                "UPDATE consumers SET acked_version = ?, acked_at = ? WHERE name = ?",
                (version, now, row[0]),
            )
            con.execute("INSERT INTO acks VALUES (?, ?, ?)", (row[0], version, now))
        con.execute("COMMIT")
    return row is not None


def ack_history(data_dir: Path) -> dict[str, list[tuple[int, str]]]:
    """Per consumer, its advancing acknowledgements: (version, time), oldest first."""
    history: dict[str, list[tuple[int, str]]] = {}
    with registry(data_dir) as con:
        for name, version, at in con.execute(
            "SELECT consumer, version, at FROM acks ORDER BY consumer, version"
        ):
            history.setdefault(str(name), []).append((int(version), str(at)))
    return history


class KeyCache:
    """Consumers by key for the API, re-read whenever the registry files change, and at
    least every :data:`REREAD_S` whatever their stamps say, without a query per request.
    The files are stat'ed at most every :data:`RECHECK_S` (two stats a request were a
    third of a lookup's system calls): a revocation or a new key takes effect within
    that, or within :data:`REREAD_S` where the stamp could not tell, well inside the
    second the API promises."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        # Named once: registry_path makes its directory private, a mkdir and chmod that a
        # request need not repeat (the registry's first read makes them anyway).
        path = registry_path(data_dir)
        self._files = (str(path), f"{path}-wal")
        self._stamp: tuple[float, ...] = ()
        self._by_hash: dict[str, Consumer] = {}
        self._lock = threading.Lock()
        self._recheck_at = 0.0  # monotonic time after which the files are stat'ed again
        self._read_at = -REREAD_S  # monotonic time of the last read, from before it

    def _files_stamp(self) -> tuple[float, ...]:
        stamps = []
        for name in self._files:
            try:
                st = os.stat(name)
                stamps += [st.st_mtime_ns, st.st_size]
            except FileNotFoundError:
                stamps += [0, 0]
        return tuple(stamps)

    def get(self, key: str) -> Consumer | None:
        """The key's consumer: as the files were at most :data:`RECHECK_S` ago, or, for a
        key not known then (one just added, or none), as they are now."""
        now = time.monotonic()
        looked = now >= self._recheck_at
        if looked:
            self._refresh()
            self._recheck_at = now + RECHECK_S  # from before the stat: never later
        hashed = hash_key(key)
        found = self._by_hash.get(hashed)
        if found is None and not looked:
            self._refresh()
            found = self._by_hash.get(hashed)
        return found

    def _refresh(self) -> None:
        now = time.monotonic()
        stamp = self._files_stamp()
        if stamp != self._stamp or now - self._read_at >= REREAD_S:
            with self._lock:
                with registry(self.data_dir) as con:
                    rows = con.execute(f"SELECT key_hash, {COLUMNS} FROM consumers").fetchall()  # noqa: S608 (a constant column list; values bound)
                self._by_hash = {str(r[0]): row_consumer(r[1:]) for r in rows}
                # The stamp from before the read: a reader's own connection creates and
                # removes the -wal file, which must not count as a change (it would
                # re-read the registry on every request); a write during the read does.
                self._stamp = stamp
                self._read_at = now

    def close(self) -> None:
        """Nothing to release: the files are opened per read."""
