"""The access log's appends, off the event loop, grouped, where the log is across a network.

Every answer waits for its own access record (SB 34: no answer without its record). With
the file log that is a ``write`` of a few microseconds, done on the event loop. With
PostgreSQL (``[serve] database_url``) it is a round trip: done on the event loop, every
other request waits through each one's, and at 500 lookups/s the p99 grew by tens to
hundreds of milliseconds (docs/benchmarks.md, "Serving state"). So here one thread does
the appends: the records of every request that arrived during the last round trip go in
one statement (one link of the chain after another, in arrival order), and each request
resumes when its own records are written. The chain and its order are the writer's
(:class:`hotlist.audit.pg.PgAccessLogWriter`); only the waiting moves.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from hotlist.audit import AccessRecord, Writer

#: The most records one statement carries (a burst is split; the order is kept).
MAX_BATCH = 1000


@dataclass
class _Pending:
    records: Sequence[AccessRecord]
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class LogBatches:
    """One appender thread for one writer; ``await append(records)`` in the event loop."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self._pending: list[_Pending] = []
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="access-log-appends", daemon=True)
        self._thread.start()

    async def append(self, records: Sequence[AccessRecord]) -> None:
        """Return once ``records`` are appended (raise what the writer raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._ready:
            if self._stopping:
                raise RuntimeError("the access log's appender has stopped")
            self._pending.append(_Pending(records, future, loop))
            self._ready.notify()
        await future

    def stop(self) -> None:
        """Append what is pending, then end the thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending and not self._stopping:
                    self._ready.wait()
                if not self._pending:
                    return
                batch = _take(self._pending)
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        try:
            self.writer.append_many([r for p in batch for r in p.records])
        except Exception as exc:  # every waiter learns it: none of them is answered
            error = exc
        for pending in batch:
            pending.loop.call_soon_threadsafe(_settle, pending.future, error)


def _take(pending: list[_Pending]) -> list[_Pending]:
    """The oldest requests whose records fit one statement (at least one request)."""
    taken, count = 0, 0
    while taken < len(pending) and (taken == 0 or count + len(pending[taken].records) <= MAX_BATCH):
        count += len(pending[taken].records)
        taken += 1
    batch = pending[:taken]
    del pending[:taken]
    return batch


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (its client went away)
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
