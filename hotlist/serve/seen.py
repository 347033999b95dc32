"""When each consumer last pulled, and what that says about a copy that fell behind.

The acknowledgement says which version a copy holds; it cannot say why a copy is
behind. The API stamps each consumer's last pull (``data_dir/serve/last_seen.sqlite``, or
PostgreSQL's ``last_seen`` with ``[serve] database_url``; at most once per ``EVERY_S`` per
consumer and server, so a thousand followers cost a few writes a second), and :func:`copy_states` tells apart:

* a copy that **pulls but does not apply**: it pulled well after its last
  acknowledgement, yet acknowledged nothing newer (its apply or its ack fails);
* a copy that **stopped polling**: no pull within the consumer SLA (or never);
* a copy that is merely **behind**: it polls on its own schedule and its next pull is
  not due yet.

Names and times only: no record content.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hotlist.serve.consumers import Consumer, private_sqlite
from hotlist.store import private_dir

#: Seconds between two stamps of the same consumer (the stamp is that coarse).
EVERY_S = 10.0
#: A pull this long after the last ack without a newer ack counts as a failed apply.
APPLY_GRACE_S = 120.0

SCHEMA = "CREATE TABLE IF NOT EXISTS last_seen (consumer TEXT PRIMARY KEY, pulled_at TEXT NOT NULL)"


def seen_path(data_dir: Path) -> Path:
    return private_dir(data_dir / "serve") / "last_seen.sqlite"


@contextmanager
def _store(data_dir: Path) -> Iterator[sqlite3.Connection]:
    with private_sqlite(seen_path(data_dir), SCHEMA) as con:
        yield con


class StampStore(Protocol):
    """Where stamps go: the registry (SQLite files or PostgreSQL)."""

    def stamp(self, consumer: str, at: str) -> None: ...


class PullStamps:
    """The server's stamper: remembers when it last wrote each consumer's stamp, so a
    consumer's stamp is written at most once per ``every_s`` by this server."""

    def __init__(self, store: StampStore, every_s: float | None = None) -> None:
        self.store = store
        self.every_s = EVERY_S if every_s is None else every_s
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, consumer: str) -> bool:
        last = self._written.get(consumer)
        return last is None or time.monotonic() - last >= self.every_s

    def stamp(self, consumer: str) -> None:
        """Record a pull now (a later stamp never moves back)."""
        with self._lock:
            if not self.due(consumer):
                return
            self._written[consumer] = time.monotonic()
        self.store.stamp(consumer, dt.datetime.now(dt.UTC).isoformat())


def stamp(data_dir: Path, consumer: str, at: str) -> None:
    """Record a pull at ``at`` in the local file, unless a later one is there already."""
    with _store(data_dir) as con:
        con.execute(
            "INSERT INTO last_seen VALUES (?, ?) ON CONFLICT (consumer)"
            " DO UPDATE SET pulled_at = max(pulled_at, excluded.pulled_at)",
            (consumer, at),
        )


def last_pulls(data_dir: Path) -> dict[str, dt.datetime]:
    """Each consumer's last pull, as stamped (nothing when no pull was ever stamped)."""
    if not (data_dir / "serve" / "last_seen.sqlite").exists():
        return {}
    with _store(data_dir) as con:
        rows = con.execute("SELECT consumer, pulled_at FROM last_seen").fetchall()
    return {str(name): dt.datetime.fromisoformat(str(at)) for name, at in rows}


@dataclass(frozen=True)
class CopyState:
    consumer: str
    acked_version: int | None
    lag: int | None  # versions behind; None when it never acknowledged one
    last_pull: dt.datetime | None
    state: str  # current | behind | pulls but does not apply | stopped polling | never pulled

    @property
    def fell_behind(self) -> bool:
        return self.state in ("pulls but does not apply", "stopped polling", "never pulled")


def copy_state(
    consumer: Consumer,
    current: int,
    last_pull: dt.datetime | None,
    now: dt.datetime,
    consumer_sla_hours: float,
) -> CopyState:
    acked = consumer.acked_version
    lag = None if acked is None else current - acked
    acked_at = dt.datetime.fromisoformat(consumer.acked_at) if consumer.acked_at else None
    if lag == 0:
        state = "current"
    elif last_pull is None:
        state = "never pulled" if acked is None else "stopped polling"
    elif acked_at is None or (last_pull - acked_at).total_seconds() > APPLY_GRACE_S:
        state = "pulls but does not apply"
    elif (now - last_pull).total_seconds() > consumer_sla_hours * 3600:
        state = "stopped polling"
    else:
        state = "behind"
    return CopyState(consumer.name, acked, lag, last_pull, state)


def copy_states(
    pulls: Mapping[str, dt.datetime],
    consumers: list[Consumer],
    current: int,
    consumer_sla_hours: float,
    now: dt.datetime | None = None,
) -> list[CopyState]:
    """The state of every active copy a California public agency may hold, from each
    consumer's last pull (``Registry.last_pulls()``)."""
    at = now or dt.datetime.now(dt.UTC)
    return [
        copy_state(c, current, pulls.get(c.name), at, consumer_sla_hours)
        for c in consumers
        if c.revoked_at is None and c.agency_kind.may_receive
    ]


def describe(states: list[CopyState]) -> str:
    """One line naming the copies that fell behind, and how."""
    behind = [s for s in states if s.fell_behind]
    if not behind:
        return "none"
    return "; ".join(
        f"{s.consumer}: {s.state}"
        + (f" (last pull {s.last_pull.isoformat(timespec='seconds')})" if s.last_pull else "")
        for s in behind
    )
