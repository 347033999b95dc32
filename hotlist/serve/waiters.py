"""Long-poll: pulls that wait for a version newer than the one they hold, without a thread.

``GET /v1/hotlist?since=V&wait=S`` parks on an :class:`asyncio.Condition` of the event
loop. While anyone waits, one task stats ``published/CURRENT.json`` every ``every_s``
(the version cache re-reads the file only when its stat moved) and wakes every waiter
when the published version changes. A thousand waiting consumers are a thousand
coroutines and one stat a tick; none holds a thread. The check uses only the shared
files, so a version published by the purge on this machine or another replica's store
wakes the waiters alike. With PostgreSQL the replica's listener wakes them sooner, the
moment it has loaded an announced version (:func:`announce`); the stat stays as the
fallback.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from hotlist.serve.versions import HotlistCache, NoVersion

log = logging.getLogger("hotlist.serve")

#: Longest wait a pull may ask for; longer asks are refused (422), not shortened.
MAX_WAIT_S = 60
#: How often the published version is stat'ed while someone waits.
CHECK_EVERY_S = 0.2


class VersionWaiters:
    """Waiters on the next published version of one data directory, in one event loop."""

    def __init__(self, cache: HotlistCache, every_s: float = CHECK_EVERY_S) -> None:
        self.cache = cache
        self.every_s = every_s
        self.waiting = 0
        self._changed = asyncio.Condition()
        self._watch: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_update: asyncio.Future[None] | None = None  # kept: a task is weak
        self._version = self._published()

    def _published(self) -> int | None:
        try:
            return int(self.cache.manifest()["version"])
        except NoVersion:
            return None

    async def other_than(self, since: int, wait_s: float) -> int | None:
        """The published version as soon as it is not ``since`` (newer, or older after the
        store was rebuilt: the pull then answers with a full version), or None after
        ``wait_s`` seconds without one."""
        self._loop = asyncio.get_running_loop()
        await self._update(self._published())  # one stat
        if self._version is not None and self._version != since:
            return self._version
        self.waiting += 1
        try:
            if self._watch is None or self._watch.done():
                self._watch = asyncio.create_task(self._check())
            async with self._changed:
                found = await _wait_for(
                    self._changed,
                    lambda: self._version is not None and self._version != since,
                    wait_s,
                )
            return self._version if found else None
        finally:
            self.waiting -= 1

    async def _check(self) -> None:
        """Stat CURRENT.json every tick while anyone waits; wake them all on a new version."""
        while self.waiting:
            await asyncio.sleep(self.every_s)
            try:
                now = self._published()
            except Exception as exc:  # a torn read while the purge replaces the file
                log.debug("published version not readable this tick: %s", type(exc).__name__)
                continue
            await self._update(now)

    async def _update(self, now: int | None) -> None:
        """Take the version now published; wake every waiter when it moved (whoever saw
        it first: a pull arriving, or the periodic check)."""
        if now != self._version:
            self._version = now
            async with self._changed:
                self._changed.notify_all()

    def announce(self) -> None:
        """From any thread: look at the published version now and wake the waiters if it
        moved, instead of at the next tick."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody has waited yet
        loop.call_soon_threadsafe(self._look_now)

    def _look_now(self) -> None:
        try:
            now = self._published()
        except Exception as exc:  # as in _check: the next tick looks again
            log.debug("published version not readable now: %s", type(exc).__name__)
            return
        self._pending_update = asyncio.ensure_future(self._update(now))


async def _wait_for(condition: asyncio.Condition, predicate: object, timeout_s: float) -> bool:
    assert callable(predicate)
    try:
        await asyncio.wait_for(condition.wait_for(predicate), timeout_s)
    except TimeoutError:
        return bool(predicate())
    return True


_BY_CACHE: weakref.WeakKeyDictionary[HotlistCache, VersionWaiters] = weakref.WeakKeyDictionary()


def waiters_for(cache: HotlistCache) -> VersionWaiters:
    """The one set of waiters of a server's version cache (made on first use, in its loop)."""
    found = _BY_CACHE.get(cache)
    if found is None:
        found = _BY_CACHE[cache] = VersionWaiters(cache)
    return found


def announce(cache: HotlistCache) -> None:
    """From any thread: ``cache`` loaded a new version; wake its waiters now."""
    found = _BY_CACHE.get(cache)
    if found is not None:
        found.announce()
