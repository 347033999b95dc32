"""The server's appends to the access log in PostgreSQL, made on its event loop.

Every answer waits for its own access record (SB 34), which with ``[serve]
database_url`` is a round trip to PostgreSQL. Made by a thread of their own, each append
cost two hand-overs between that thread and the event loop, and both sides had to take
the interpreter's lock from the other: a thread that wants it while the loop serves
waits up to the switch interval (5 ms), and a holder the kernel preempts on a busy host
stalls the other for its whole time slice. At 500 lookups/s that put PostgreSQL's p99
8 to 80 ms above the file log's (docs/benchmarks.md, "Serving state"). Here the loop
sends the statement itself on an asynchronous connection and goes on serving while it
travels; the answer wakes the loop like any socket does.

Grouping is kept: the records of every request that arrives while a statement is in
flight go together in the next one, in arrival order, and each request resumes once its
own are written. The chain, the compare-and-set and the durability are
:class:`~hotlist.audit.pg.PgAccessLogWriter`'s (its head, its key, its :meth:`sync`,
``synchronous_commit = off`` on this connection as on its own): only where the waiting
happens changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from hotlist import pg
from hotlist.audit.pg import (
    CURRENT_HEAD,
    INSERT_ANCHOR,
    RECONNECT_PAUSE_S,
    RECORD_HASH,
    SEGMENT,
    PgAccessLogWriter,
    anchor_row,
    append_statement,
    is_record,
    moved,
    storable,
)
from hotlist.audit.record import AccessRecord
from hotlist.audit.segments import Head

#: The most records one statement carries (a burst is split; the order is kept).
MAX_BATCH = 1000

_Waiting = tuple[Sequence[AccessRecord], "asyncio.Future[None]"]


class LoopAppends:
    """``await append(records)`` on the server's event loop (one loop per server)."""

    def __init__(self, writer: PgAccessLogWriter) -> None:
        self.writer = writer
        self._con: psycopg.AsyncConnection[Any] | None = None
        self._waiting: list[_Waiting] = []
        self._draining: asyncio.Task[None] | None = None
        self._stopping = False
        self._no_reconnect_until = 0.0

    async def append(self, records: Sequence[AccessRecord]) -> None:
        """Return once ``records`` are appended (raise what appending them raised)."""
        if self._stopping:
            raise RuntimeError("the access log's appends have stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((records, future))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        await future

    def stop(self) -> None:
        """Take no more appends (at shutdown, once no request is left); :meth:`aclose`
        closes the connection."""
        self._stopping = True

    async def aclose(self) -> None:
        self._stopping = True
        if self._draining is not None:
            with contextlib.suppress(Exception):
                await self._draining
        if self._con is not None:
            await self._con.close()
            self._con = None

    async def _drain(self) -> None:
        """Statement after statement while requests wait, each with every record that
        arrived before it was sent (at most :data:`MAX_BATCH`)."""
        try:
            while self._waiting:
                batch = _take(self._waiting)
                error: BaseException | None = None
                try:
                    await self._append([r for records, _ in batch for r in records])
                except Exception as exc:  # every waiter learns it: none of them is answered
                    error = exc
                except BaseException as exc:  # cancelled (the loop ends): tell them, stop
                    for _, future in [*batch, *self._waiting]:
                        _settle(future, RuntimeError("the access log's appends were stopped"))
                    self._waiting.clear()
                    raise exc from None
                for _, future in batch:
                    _settle(future, error)
        finally:
            self._draining = None

    async def _append(self, records: list[AccessRecord]) -> None:
        """:meth:`PgAccessLogWriter.append_many`, awaited: chain onto the head, one
        statement; re-chain when another writer moved the head first; after a broken
        connection, reconnect once and find out whether the statement was committed."""
        batch = [storable(r.fields()) for r in records]
        when = dt.datetime.now(dt.UTC)
        stamp = when.isoformat(timespec="microseconds")
        head, reconnected = self.writer.head(), False
        while True:
            entries = self.writer.chain(head, batch, stamp)
            token = secrets.randbits(63)
            try:
                con = await self._connection()
                cur = await con.execute(*append_statement(head, entries, token))
                now = moved(await cur.fetchone())
            except psycopg.OperationalError:
                if reconnected:
                    raise
                reconnected = True
                await self._drop()
                con = await self._connection()
                now = moved(await (await con.execute(CURRENT_HEAD)).fetchone())
                if now[2] != token:
                    found = await (await con.execute(RECORD_HASH, (entries[-1]["seq"],))).fetchone()
                    if is_record(found, entries[-1]):
                        now = (now[0], now[1], token)  # written; another writer went on since
            if now[2] == token:
                break
            self.writer.retries += 1  # another writer moved the head first: chain onto its
            head = Head(SEGMENT, now[0], now[1])
        head = Head(SEGMENT, entries[-1]["seq"], entries[-1]["hash"])
        if self.writer.appended(head, when):
            await con.execute(INSERT_ANCHOR, anchor_row(self.writer.hourly_anchor(head, when)))

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        """The open connection, or a new one; after a failed attempt, none for
        ``RECONNECT_PAUSE_S``: requests then fail at once while the database is away."""
        if self._con is not None and not self._con.closed:
            return self._con
        if time.monotonic() < self._no_reconnect_until:
            raise pg.DatabaseUnavailable(
                f"the access log's database (PostgreSQL at {pg.where(self.writer.url)}) was"
                " unreachable less than a second ago"
            )
        try:
            self._con = await pg.connect_async(self.writer.url, options="-c synchronous_commit=off")
        except BaseException:
            self._no_reconnect_until = time.monotonic() + RECONNECT_PAUSE_S
            raise
        return self._con

    async def _drop(self) -> None:
        if self._con is not None:
            with contextlib.suppress(psycopg.Error):
                await self._con.close()
            self._con = None


def _take(waiting: list[_Waiting]) -> list[_Waiting]:
    """The oldest requests whose records fit one statement (at least one request)."""
    taken, count = 0, 0
    while taken < len(waiting) and (taken == 0 or count + len(waiting[taken][0]) <= MAX_BATCH):
        count += len(waiting[taken][0])
        taken += 1
    batch = waiting[:taken]
    del waiting[:taken]
    return batch


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (its client went away)
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
