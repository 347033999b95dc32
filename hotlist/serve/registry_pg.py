"""The consumer registry in PostgreSQL (``[serve] database_url``), shared by replicas.

Tables ``consumers``, ``acks`` and ``last_seen`` of migration 0001. Every write is one
statement, so two replicas acknowledging at once cannot move an ack backwards: the
``UPDATE`` locks the consumer's row and re-checks ``acked_version < new`` on the row as
committed by the other (PostgreSQL's READ COMMITTED re-evaluation), and the history row
is inserted only when the update took place.

The API's key cache (:class:`PgKeyCache`) holds every key hash in memory and answers a
request without a query. A listener keeps it current (``LISTEN hotlist_consumers``: the
0001 trigger notifies on every change of who may be served) and proves it is alive with
a round trip every ``POLL_S``. The map may be used only for ``FRESH_S`` after the last
proof: a listener that lost its connection, hangs on a silent network, or is starved of
CPU on a loaded host stops proving; the next request then reloads the map itself (one
query, which proves it current), and if the database does not answer, the cache refuses
every key (:class:`~hotlist.serve.consumers.KeysUnavailable`, answered 503) instead of
honouring one revoked meanwhile. So a revocation reaches every replica within
``FRESH_S`` plus a reload, whatever happens to the notification.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from hotlist.pg import LIVENESS, DatabaseUnavailable, connect, where
from hotlist.pg.migrate import require_current
from hotlist.serve.consumers import (
    COLUMNS,
    AgencyKind,
    Consumer,
    ConsumerError,
    KeysUnavailable,
    check_agency,
    hash_key,
    new_key,
    now_iso,
    row_consumer,
)

logger = logging.getLogger("hotlist.serve.keys")

#: The database's time now, as the registry writes times (``now_iso``: ISO 8601, UTC).
DB_NOW = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"

#: The channel the 0001 trigger notifies when a key is added, rotated or revoked.
CHANNEL = "hotlist_consumers"
#: Seconds the key map may be used after the listener last proved it current.
FRESH_S = 0.5
#: Seconds between two proofs (a round trip) when nothing changes.
POLL_S = 0.15
#: After a request failed to reload the keys itself, requests refuse at once this long.
RETRY_S = 0.5
#: The longest wait between two reconnection attempts.
MAX_BACKOFF_S = 1.0


class PgRegistry:
    """The registry's operations on PostgreSQL; connections come from a small pool opened
    at first use (a command that only reads opens one connection, a server a few)."""

    def __init__(self, url: str) -> None:
        self.url = url
        with connect(url) as con:
            require_current(con)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    kwargs={"autocommit": True, "application_name": "hotlist", **LIVENESS},
                    min_size=1,
                    max_size=4,
                    timeout=5.0,
                    check=ConnectionPool.check_connection,
                    name="hotlist-registry",
                    open=True,
                )
            pool = self._pool
        try:
            with pool.connection() as con:
                yield con
        except (PoolTimeout, psycopg.OperationalError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise DatabaseUnavailable(
                f"cannot use PostgreSQL at {where(self.url)}: {reason}"
            ) from None

    def add(self, name: str, ori: str, agency_name: str, kind: AgencyKind) -> str:
        check_agency(ori, kind)
        key = new_key()
        with self._connection() as con:
            try:
                con.execute(
                    "INSERT INTO consumers (name, key_hash, agency_ori, agency_name, agency_kind,"
                    " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (name, hash_key(key), ori, agency_name, kind.value, now_iso()),
                )
            except errors.UniqueViolation:
                raise ConsumerError(f"a consumer named {name!r} exists already") from None
        return key

    def rotate(self, name: str) -> str:
        key = new_key()
        with self._connection() as con:
            cur = con.execute(
                "UPDATE consumers SET key_hash = %s WHERE name = %s AND revoked_at IS NULL",
                (hash_key(key), name),
            )
            if cur.rowcount != 1:
                raise ConsumerError(f"no active consumer named {name!r}")
        return key

    def revoke(self, name: str) -> None:
        with self._connection() as con:
            cur = con.execute(
                "UPDATE consumers SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL",
                (now_iso(), name),
            )
            if cur.rowcount != 1:
                raise ConsumerError(f"no active consumer named {name!r}")

    def all_consumers(self) -> list[Consumer]:
        with self._connection() as con:
            rows = con.execute(f"SELECT {COLUMNS} FROM consumers ORDER BY name").fetchall()  # noqa: S608 (a constant column list)
        return [row_consumer(r) for r in rows]

    def by_key(self, key: str) -> Consumer | None:
        with self._connection() as con:
            row = con.execute(
                f"SELECT {COLUMNS} FROM consumers WHERE key_hash = %s",  # noqa: S608 (constant columns)
                (hash_key(key),),
            ).fetchone()
        return None if row is None else row_consumer(row)

    def ack(self, key: str, version: int) -> bool:
        """One statement: the update takes the row lock and re-checks the key and the
        version against a concurrent revocation's or ack's commit; the history row follows
        only an actual advance. Its time is the database's, read once the row is locked:
        advances of a consumer are dated in their order, whichever replica's clock runs
        ahead. Nothing advanced: whether the key is still active says why."""
        where = {"v": version, "h": hash_key(key)}
        with self._connection() as con:
            moved = con.execute(
                "WITH moved AS ("  # noqa: S608 (DB_NOW is a constant; values are bound)
                f" UPDATE consumers SET acked_version = %(v)s, acked_at = {DB_NOW}"
                " WHERE key_hash = %(h)s AND revoked_at IS NULL"
                " AND (acked_version IS NULL OR acked_version < %(v)s)"
                " RETURNING name, acked_at)"
                " INSERT INTO acks (consumer, version, at) SELECT name, %(v)s, acked_at FROM moved"
                " RETURNING consumer",
                where,
            ).fetchone()
            if moved is not None:
                return True
            active = con.execute(
                "SELECT 1 FROM consumers WHERE key_hash = %(h)s AND revoked_at IS NULL", where
            ).fetchone()
        return active is not None

    def ack_history(self) -> dict[str, list[tuple[int, str]]]:
        history: dict[str, list[tuple[int, str]]] = {}
        with self._connection() as con:
            rows = con.execute(
                "SELECT consumer, version, at FROM acks ORDER BY consumer, version"
            ).fetchall()
        for name, version, at in rows:
            history.setdefault(str(name), []).append((int(version), str(at)))
        return history

    def stamp(self, consumer: str, at: str) -> None:
        with self._connection() as con:
            con.execute(
                "INSERT INTO last_seen (consumer, pulled_at) VALUES (%s, %s)"
                " ON CONFLICT (consumer)"
                " DO UPDATE SET pulled_at = GREATEST(last_seen.pulled_at, excluded.pulled_at)",
                (consumer, at),
            )

    def last_pulls(self) -> dict[str, dt.datetime]:
        with self._connection() as con:
            rows = con.execute("SELECT consumer, pulled_at FROM last_seen").fetchall()
        return {str(name): dt.datetime.fromisoformat(str(at)) for name, at in rows}

    def key_cache(self) -> PgKeyCache:
        return PgKeyCache(self.url)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PgKeyCache:
    """Every consumer by key hash, kept current by a listener thread (module docstring).

    ``get`` answers from the map while the listener's last proof is younger than
    ``fresh_s``; past that it reloads the map itself (one query), and raises
    :class:`KeysUnavailable` when the database does not answer. The listener
    reconnects on its own, waiting 0.05 s, then twice as long each time, at most
    ``MAX_BACKOFF_S``; its first load is awaited (a few seconds at most) so a server that
    just started does not refuse its first requests."""

    def __init__(self, url: str, fresh_s: float = FRESH_S, poll_s: float = POLL_S) -> None:
        self.url = url
        self.fresh_s, self.poll_s = fresh_s, poll_s
        self._by_hash: dict[str, Consumer] = {}
        self._valid_until = 0.0  # time.monotonic() past which the map must not be used
        self._stop = threading.Event()
        self._loaded = threading.Event()
        #: Loads are serialized: a map is never replaced by one read before it.
        self._loading = threading.Lock()
        self._revalidating = threading.Lock()
        self._own: psycopg.Connection[Any] | None = None
        self._no_retry_until = 0.0
        self._thread = threading.Thread(target=self._listen, name="consumer-keys", daemon=True)
        self._thread.start()
        self._loaded.wait(timeout=5)

    def get(self, key: str) -> Consumer | None:
        if time.monotonic() > self._valid_until:
            self._revalidate()
        return self._by_hash.get(hash_key(key))

    def _revalidate(self) -> None:
        """The map outlived its proof (the listener is reconnecting, or starved of CPU on
        a loaded host): load it here, once, on a connection of its own, which proves it
        current; :class:`KeysUnavailable` if the database does not answer (then no new
        attempt for ``RETRY_S``, so that requests fail at once while it is away)."""
        with self._revalidating:
            if time.monotonic() <= self._valid_until:
                return  # another request just did
            if self._stop.is_set() or time.monotonic() < self._no_retry_until:
                raise self._unavailable()
            try:
                if self._own is None or self._own.closed:
                    self._own = connect(self.url, connect_timeout=2)
                self._load(self._own)
            except Exception as exc:
                if self._own is not None:
                    self._own.close()
                self._own = None
                self._no_retry_until = time.monotonic() + RETRY_S
                raise self._unavailable() from exc

    def _unavailable(self) -> KeysUnavailable:
        return KeysUnavailable(
            f"the consumer registry (PostgreSQL at {where(self.url)}) cannot be confirmed"
            " current; no API key is honoured until it can"
        )

    def close(self) -> None:
        """Stop the listener (it wakes within ``poll_s``) and refuse from now on."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._valid_until = 0.0
        with self._revalidating:
            if self._own is not None:
                self._own.close()
                self._own = None

    def _proved(self, since: float) -> None:
        """The map is current as of ``since`` (a monotonic time taken before the round
        trip that proved it): usable until ``since + fresh_s``."""
        if not self._stop.is_set():  # a closed cache stays refused
            self._valid_until = max(self._valid_until, since + self.fresh_s)

    def _load(self, con: psycopg.Connection[Any]) -> None:
        with self._loading:
            since = time.monotonic()
            rows = con.execute(f"SELECT key_hash, {COLUMNS} FROM consumers").fetchall()  # noqa: S608 (a constant column list)
            self._by_hash = {str(r[0]): row_consumer(r[1:]) for r in rows}
            self._proved(since)
        self._loaded.set()

    def _listen(self) -> None:
        backoff, lost = 0.05, False
        while not self._stop.is_set():
            try:
                with connect(self.url) as con:
                    # LISTEN before the load: a change made between them is notified.
                    con.execute(f"LISTEN {CHANNEL}")
                    self._load(con)
                    if lost:
                        logger.info("the key cache reaches %s again", where(self.url))
                    backoff, lost = 0.05, False
                    self._follow(con)
            except Exception as exc:  # whatever it was, reconnect; the map expires meanwhile
                if not lost:
                    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
                    logger.warning(
                        "the key cache lost PostgreSQL at %s (%s); requests are refused"
                        " from %.1f s after its last proof until it is back",
                        where(self.url), reason or type(exc).__name__, self.fresh_s,
                    )  # fmt: skip
                lost = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _follow(self, con: psycopg.Connection[Any]) -> None:
        """Reload on a notification; otherwise prove the connection with a round trip."""
        while not self._stop.is_set():
            # Notifications received during a query are kept by psycopg and come first.
            if list(con.notifies(timeout=self.poll_s, stop_after=1)):
                self._load(con)
                continue
            since = time.monotonic()
            con.execute("SELECT 1")
            self._proved(since)
