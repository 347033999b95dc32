"""The server's appends to the access log in PostgreSQL, made on its event loop.

Every answer waits for its own access record (SB 34). It waits for the record's line in
the server's journal (:mod:`hotlist.audit.pg_journal`: a ``write``, as the file log's),
not for PostgreSQL: a statement's round trip waits for a database backend to be
scheduled, on a host that also serves, and put PostgreSQL's p99 4 to 8 ms above the file
log's (docs/benchmarks.md, "Serving state"). Behind the answers, the loop sends the
journal's records on an asynchronous connection, and goes on serving while each
statement travels; its answer wakes the loop like any socket does.

Grouping: the records of every request that arrives while a statement is in flight go
together in the next one, in arrival order. The chain, the compare-and-set and the
durability are :class:`~hotlist.audit.pg.PgAccessLogWriter`'s (its head, its key, its
:meth:`sync`, ``synchronous_commit = off`` on this connection as on its own).

While the database cannot take records (a statement failed, or the oldest record waiting
is older than :data:`MAX_BEHIND_S`), requests are refused: the journal bridges a round
trip, not an outage. The statements are retried every second; what the journal holds is
sent when the database is back, or by the next server on this ``data_dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
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
from hotlist.audit.pg_journal import Journal, Left, Retired, done_with
from hotlist.audit.record import AccessRecord
from hotlist.audit.segments import Head

#: The most records one statement carries (a burst is split; the order is kept).
MAX_BATCH = 1000
#: Requests are refused while the oldest record waiting for the database is this old.
MAX_BEHIND_S = 2.0

logger = logging.getLogger(__name__)


class LoopAppends:
    """``await append(records)`` on the server's event loop (one loop per server).

    Made before the server serves: records that dead servers left in their journals on
    this ``data_dir`` are sent first (a server that cannot send them does not start)."""

    def __init__(self, writer: PgAccessLogWriter) -> None:
        self.writer = writer
        for left in Journal.dead(writer.data_dir):
            send_left(writer, left)
        self.journal = Journal(writer.data_dir)
        writer.journal = self.journal  # its sync() makes the journal durable
        self._con: psycopg.AsyncConnection[Any] | None = None
        #: Records written to the journal, not yet known to be in the database.
        self._waiting: list[tuple[int, dict[str, Any]]] = []
        self._since = 0.0  # when the oldest of them was written (monotonic)
        self._failure: BaseException | None = None
        self._draining: asyncio.Task[None] | None = None
        self._scrubbing: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._no_reconnect_until = 0.0
        #: Statements of the batch in flight whose answer was lost: any may still land
        #: (a backend waiting on a lock does not notice its client gone), so each is
        #: asked about whenever the head moves, and the batch is not grown meanwhile.
        self._unsure: list[list[dict[str, Any]]] = []
        self._unsure_size = 0

    async def append(self, records: Sequence[AccessRecord]) -> None:
        """Write ``records`` to the journal (they are on their way to the database), or
        raise why the log cannot take them now."""
        if self._stopping:
            raise RuntimeError("the access log's appends have stopped")
        now = time.monotonic()
        if self._failure is not None:
            raise pg.DatabaseUnavailable(
                f"the access log's database (PostgreSQL at {pg.where(self.writer.url)})"
                f" cannot take records: {pg.reason(self._failure)}"
            )
        if self._waiting and now - self._since > MAX_BEHIND_S:
            raise pg.DatabaseUnavailable(
                f"the access log's database (PostgreSQL at {pg.where(self.writer.url)}) has"
                f" taken no record for {now - self._since:.1f} s"
            )
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        batch = [{"time": stamp, **storable(r.fields())} for r in records]
        last = self.journal.write(batch)
        if not self._waiting:
            self._since = now
        first = last - len(batch) + 1
        self._waiting += [(first + i, fields) for i, fields in enumerate(batch)]
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())

    def stop(self) -> None:
        """Take no more appends (at shutdown, once no request is left); :meth:`aclose`
        sends what is waiting and closes the connection."""
        self._stopping = True

    async def aclose(self) -> None:
        self._stopping = True
        if self._draining is not None:
            with contextlib.suppress(Exception):
                await self._draining
        if self._waiting:  # the database is away: the next server sends them
            logger.warning(
                "%d access records wait in the journal for the database", len(self._waiting)
            )
        await asyncio.gather(*self._scrubbing)
        try:  # what was sent durable in the database before the journal is scrubbed
            await asyncio.to_thread(self.writer.sync)
            durable = True
        except Exception:
            durable = False
        self.journal.close(scrub=durable)
        if self._con is not None:
            await self._con.close()
            self._con = None

    async def _drain(self) -> None:
        """Statement after statement while records wait, each with every record written
        before it was sent (at most :data:`MAX_BATCH`); after a failure, once a second,
        requests refused meanwhile (once stopping: one attempt)."""
        try:
            while self._waiting:
                batch = self._waiting[: self._unsure_size or MAX_BATCH]
                try:
                    await self._append(batch)
                except Exception as exc:
                    if self._failure is None:
                        logger.warning("the access log's database cannot take records: %s",
                                       pg.reason(exc))  # fmt: skip
                    self._failure = exc
                    if self._stopping:
                        return
                    await asyncio.sleep(RECONNECT_PAUSE_S)
                    continue
                self._failure = None
                del self._waiting[: len(batch)]
                self._since = time.monotonic()
                retired = self.journal.sent(batch[-1][0])
                if retired is not None:  # scrubbed off the loop: a write and fsync of 1 MiB
                    scrub = asyncio.to_thread(self._scrub_once_durable, retired)
                    self._scrubbing.add(asyncio.create_task(scrub))
                    self._scrubbing = {t for t in self._scrubbing if not t.done()}
        finally:
            self._draining = None

    def _scrub_once_durable(self, retired: Retired) -> None:
        """Scrub a file all of whose records were sent once they are durable in the
        database (the statements commit asynchronously); else keep it (every record in
        it noted sent: the next server on this ``data_dir`` scrubs it)."""
        try:
            self.writer.sync()
        except Exception:
            retired.keep()
            return
        retired.scrub()

    async def _append(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        """Chain onto the head, one statement (noted in the journal before it is sent);
        re-chain when another writer moved the head first; after a broken connection,
        reconnect once and find out whether the statement was committed."""
        fields = [f for _, f in batch]
        through = batch[-1][0]
        head, reconnected = self.writer.head(), False
        while True:
            entries = self.writer.chain(head, fields)
            self.journal.sending(through, entries[-1]["seq"], entries[-1]["hash"])
            token = secrets.randbits(63)
            self._unsure.append(entries)
            self._unsure_size = len(batch)
            try:
                con = await self._connection()
                cur = await con.execute(*append_statement(head, entries, token))
                now = moved(await cur.fetchone())
                self._unsure.pop()  # answered: it landed if and only if the token is its
            except psycopg.OperationalError:
                if reconnected:
                    raise
                reconnected = True
                await self._drop()
                con = await self._connection()
                now = moved(await (await con.execute(CURRENT_HEAD)).fetchone())
            if now[2] == token:
                break
            landed = await self._landed(con)
            if landed is not None:  # written after all; another writer may have gone on since
                entries = landed
                break
            self.writer.retries += 1  # another writer moved the head first: chain onto its
            head = Head(SEGMENT, now[0], now[1])
        self._unsure.clear()  # the head moved past every other one: none can land now
        self._unsure_size = 0
        head = Head(SEGMENT, entries[-1]["seq"], entries[-1]["hash"])
        when = dt.datetime.now(dt.UTC)
        if self.writer.appended(head, when):
            await con.execute(INSERT_ANCHOR, anchor_row(self.writer.hourly_anchor(head, when)))

    async def _landed(self, con: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]] | None:
        """The statement of this batch whose answer was lost and that did land, if any."""
        for entries in self._unsure:
            found = await (await con.execute(RECORD_HASH, (entries[-1]["seq"],))).fetchone()
            if is_record(found, entries[-1]):
                return entries
        return None

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        """The open connection, or a new one; after a failed attempt, none for
        ``RECONNECT_PAUSE_S``."""
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


def send_left(writer: PgAccessLogWriter, left: Left) -> None:
    """Send what a dead server's journal holds (its statement in flight first asked
    about), noting each statement in that file as its server did; then scrub it."""
    parts = _parts(left.records)
    doubt: list[tuple[int, str]] = []
    if left.in_doubt is not None:
        through, made = left.in_doubt
        if any(writer.holds(seq, hash_) for seq, hash_ in made):
            left.landed()
            left.note({"sent": through})  # else a later "sending" line hides that it landed
            parts = _parts(left.records)
        else:
            # Not in the log yet, but its statement may still wait in PostgreSQL (its
            # server's death goes unnoticed there until it answers): its records are sent
            # on their own, asking again whenever the head moves under them.
            doubt = made
            first = [(n, r) for n, r in left.records if n <= through]
            rest = [(n, r) for n, r in left.records if n > through]
            parts = [first, *_parts(rest)]
    for part in parts:
        if not part:
            continue
        through = part[-1][0]

        def in_flight(entries: list[dict[str, Any]], through: int = through) -> None:
            left.note({"sending": through, "seq": entries[-1]["seq"], "hash": entries[-1]["hash"]})

        writer.append_fields([f for _, f in part], on_chained=in_flight, in_doubt=doubt)
        doubt = []  # once the head moved past them, those statements can no longer land
        left.note({"sent": through})
    writer.sync()  # they were durable in the journal: durable in the database before scrubbed
    done_with(left)
    if left.records:
        logger.warning(
            "sent %d access records a stopped server left in %s", len(left.records), left.path
        )


def _parts(records: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    return [records[at : at + MAX_BATCH] for at in range(0, len(records), MAX_BATCH)]
