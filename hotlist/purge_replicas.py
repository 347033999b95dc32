"""The purge and the serving replicas: the version it published reaches every memory.

A replica holds a whole hotlist version in memory; the removed records are erased from
disk, but a replica that still serves the old version still holds them. So once the
purge has published the new version and erased the superseded ones, it announces the
version (``NOTIFY hotlist_versions``, :mod:`hotlist.serve.replicas` listens) and, before
it marks anything purged, waits until every live replica (heartbeat younger than
:data:`~hotlist.serve.replicas.LIVE_S`) reports that it serves it, at most
``[purge] replica_wait_s``:

* confirmed: the replica serves the new version (the old copy is dropped);
* not confirmed: live when the version was announced, and it neither confirmed within
  the wait nor stayed live (stuck, stopped, or killed since): a finding naming it, so
  the purge fails its verification and the next one tries again;
* not serving: its heartbeat was already stale when the version was announced (dead):
  reported, not waited for;
* shut down: it dropped its row while the purge waited (a clean shutdown frees its
  memory).

PostgreSQL unreachable is a finding too: nothing then says what the replicas hold.
Only names, versions and times are kept (the deletion report lists them).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from hotlist.pg import DatabaseUnavailable, connect, where
from hotlist.serve.replicas import CHANNEL, LIVE_S
from hotlist.verify import Verification

#: How often the purge looks at the replicas' rows while it waits.
POLL_S = 0.05

_ROWS = """
SELECT name, serving_version, heartbeat_at,
       heartbeat_at >= now() - make_interval(secs => %s) AS live
FROM replicas ORDER BY name
"""


@dataclass(frozen=True)
class ReplicaOutcome:
    name: str
    status: str  # confirmed, not confirmed, not serving, shut down
    serving_version: int | None
    last_heartbeat: str | None  # ISO 8601 UTC

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Announced:
    version: int
    live: frozenset[str]
    dead: tuple[ReplicaOutcome, ...]


def _rows(con: psycopg.Connection[Any]) -> dict[str, tuple[int | None, str, bool]]:
    return {
        str(name): (None if version is None else int(version), at.isoformat(), bool(live))
        for name, version, at, live in con.execute(_ROWS, (LIVE_S,)).fetchall()
    }


def announce(con: psycopg.Connection[Any], version: int) -> Announced:
    """Note who is live, then tell every replica that ``version`` is the one to serve."""
    rows = _rows(con)
    con.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))
    return Announced(
        version,
        frozenset(n for n, (_, _, live) in rows.items() if live),
        tuple(
            ReplicaOutcome(n, "not serving", v, at) for n, (v, at, live) in rows.items() if not live
        ),
    )


def confirmations(
    con: psycopg.Connection[Any], announced: Announced, wait_s: float
) -> list[ReplicaOutcome]:
    """Wait (at most ``wait_s``) until every live replica serves the announced version;
    one outcome per replica. A replica that registers meanwhile is waited for too."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = _rows(con)
        names = announced.live | {n for n, (_, _, live) in rows.items() if live}
        outcomes, waiting = [], False
        for name in sorted(names):
            if name not in rows:
                outcomes.append(ReplicaOutcome(name, "shut down", None, None))
                continue
            version, at, live = rows[name]
            if version == announced.version:
                outcomes.append(ReplicaOutcome(name, "confirmed", version, at))
            else:
                waiting = waiting or live
                outcomes.append(ReplicaOutcome(name, "not confirmed", version, at))
        if not waiting or time.monotonic() >= deadline:
            return outcomes + [d for d in announced.dead if d.name not in names]
        time.sleep(POLL_S)


@dataclass
class Round:
    """One announcement and its confirmations (what :func:`announce_version` began)."""

    url: str
    version: int
    started: float  # monotonic
    announced: Announced | None = None
    error: str | None = None


def announce_version(url: str, version: int) -> Round:
    """Announce ``version`` to the replicas now; a failure is kept for the verification."""
    began = Round(url, version, time.monotonic())
    try:
        with connect(url) as con:
            began.announced = announce(con, version)
    except (DatabaseUnavailable, psycopg.Error) as exc:
        began.error = f"cannot announce version {version}: {str(exc).strip() or exc}"
    return began


def confirm_replicas(began: Round, wait_s: float, verification: Verification) -> None:
    """Wait for the replicas (``wait_s`` from the announcement) and add what each
    confirmed to ``verification``: a finding per live replica that did not."""
    place = f"replicas ({where(began.url)})"
    if began.announced is None:
        verification.add(place, began.error or "the version was not announced")
        return
    left = max(0.0, wait_s - (time.monotonic() - began.started))
    try:
        with connect(began.url) as con:
            outcomes = confirmations(con, began.announced, left)
    except (DatabaseUnavailable, psycopg.Error) as exc:
        verification.add(
            place,
            f"cannot tell which version each replica serves: {str(exc).strip() or exc}",
        )
        return
    verification.replicas = [o.as_dict() for o in outcomes]
    for o in outcomes:
        if o.status == "not confirmed":
            verification.add(
                f"replica {o.name}",
                f"live when version {began.version} was announced, it did not confirm"
                f" serving it within {wait_s:g} s (serves {o.serving_version}, last"
                f" heartbeat {o.last_heartbeat}): it may still hold removed records in memory",
            )
