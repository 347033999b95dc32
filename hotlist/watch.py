"""Watch the sources for a change and run the ingest and its purge as soon as one lands.

Each source is checked every ``[sources.X] poll_seconds`` (or ``--interval``) with a stat
of its files and their companions (:mod:`hotlist.sources.probe`): no content is read and
an SFTP session stays open between checks. When the marks moved since the last check
(or on the first check, since nothing says what happened while nobody watched), the
source's ingest runs; what the marks were before the ingest is kept, so a file replaced
during the ingest is seen at the next check.

The purge follows once per round of checks, after the ingests of every source that
changed in it: when CLEW and NCIC publish together, one purge publishes, erases and
verifies both sources' removals, where a purge per source would publish the whole
hotlist and read every file of the store twice before the second source's removals
reached a patrol copy (``docs/freshness.md`` has the figures). A round that ingested
something checks the other sources once more before its purge, so a file that lands
while an ingest runs (CLEW's tables a second before NCIC's 125 MB extract is complete)
joins that purge.

A check that cannot reach the server, or an ingest that failed on a dropped connection,
leaves the marks as they were: the next check tries again. A file that was refused
keeps its marks: it is not fetched again until it changes.

Stopping (:meth:`Watcher.stop`, which SIGTERM and Ctrl-C call in ``hotlist watch``) is
honoured between steps: an ingest or purge under way finishes first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from hotlist.config import Settings
from hotlist.sources import FetchError
from hotlist.sources.probe import Marks, Prober

log = logging.getLogger("hotlist.watch")


@dataclass(frozen=True)
class Ingested:
    """What a source's ingest did, in names and counts: its one-line summary, whether the
    purge must follow (a file applied, or a killed run left work), and its failure."""

    summary: str
    purge: bool
    failure: Exception | None = None


#: Runs a source's ingest (raises :class:`FetchError` when the source could not be read).
IngestStep = Callable[[str], Ingested]
#: Runs the purge; returns a one-line summary (names and counts only).
PurgeStep = Callable[[], str]


@dataclass
class Watched:
    """One source under watch: its prober, its interval, and the marks last acted on."""

    name: str
    prober: Prober
    every_s: float
    marks: Marks | None = None
    due: float = 0.0
    checks: int = 0
    runs: int = 0
    failures: list[str] = field(default_factory=list)


def changed_names(before: Marks | None, after: Marks) -> list[str]:
    """The names whose marks differ (every name when there were no marks before)."""
    if before is None:
        return sorted(after)
    return sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))


class Watcher:
    """The change-detection loop over the configured sources (or the ones named)."""

    def __init__(
        self,
        settings: Settings,
        ingest: IngestStep,
        purge: PurgeStep,
        sources: list[str] | None = None,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = sources or sorted(settings.sources)
        self.ingest, self.purge = ingest, purge
        self.clock = clock
        self.purge_due = False
        self.purges = 0
        self.purge_failures: list[str] = []
        self.watched = [
            Watched(
                name,
                Prober(settings.source(name)),
                interval_s or settings.source(name).poll_seconds,
            )
            for name in names
        ]
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop after the step under way (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, max_seconds: float | None = None) -> None:
        """Check each source when due until stopped (or ``max_seconds`` have passed)."""
        ends = None if max_seconds is None else self.clock() + max_seconds
        with ExitStack() as stack:
            for w in self.watched:
                stack.enter_context(w.prober)
            while not self._stop.is_set():
                self._round()
                self.settle()
                now = self.clock()
                if ends is not None and now >= ends:
                    break
                wake = min(w.due for w in self.watched)
                if ends is not None:
                    wake = min(wake, ends)
                self._stop.wait(max(0.0, wake - now))

    def _round(self) -> None:
        """Check each source that is due. Once one was ingested, every other source is
        checked again before the purge, and ingested if it changed meanwhile (a stat
        each): a file that lands while another source's ingest runs joins this round's
        purge instead of waiting a whole purge for the next one. Each source is ingested
        at most once a round, so the purge always follows."""
        ingested: set[str] = set()
        again = True
        while again and not self._stop.is_set():
            again = False
            for w in self.watched:
                if self._stop.is_set():
                    break
                if w.name in ingested or (not ingested and self.clock() < w.due):
                    continue
                if self.check(w, settle=False):
                    ingested.add(w.name)
                    again = True
                w.due = self.clock() + w.every_s

    def check(self, w: Watched, settle: bool = True) -> bool:
        """One check of one source; True when its ingest ran. With ``settle`` the purge
        follows at once (else at the end of the round: :meth:`settle`)."""
        w.checks += 1
        try:
            marks = w.prober.probe()
        except FetchError as exc:
            log.warning("%s: the change check failed, retrying at the next one: %s", w.name, exc)
            return False
        moved = changed_names(w.marks, marks)
        if not moved:
            return False
        if self._stop.is_set():
            return False
        log.info("%s: changed upstream (%s); ingesting", w.name, ", ".join(moved))
        w.runs += 1
        try:
            done = self.ingest(w.name)
        except FetchError as exc:
            w.failures.append(exc.kind.value)
            if exc.transient:
                log.warning("%s: the fetch failed, retrying at the next check: %s", w.name, exc)
                return True
            log.error("%s: the fetch failed: %s", w.name, exc)
        except Exception as exc:
            w.failures.append(type(exc).__name__)
            log.error("%s: the ingest failed: %s", w.name, exc)
        else:
            self.purge_due = self.purge_due or done.purge
            if done.failure is not None:
                w.failures.append(type(done.failure).__name__)
                log.error("%s: %s; the ingest failed: %s", w.name, done.summary, done.failure)
            else:
                log.info("%s: %s", w.name, done.summary)
        w.marks = marks
        if settle:
            self.settle()
        return True

    def settle(self) -> None:
        """The purge, when an ingest since the last one asked for it."""
        if not self.purge_due:
            return
        self.purge_due = False
        self.purges += 1
        try:
            log.info("purge: %s", self.purge())
        except Exception as exc:
            self.purge_failures.append(type(exc).__name__)
            log.error("the purge failed: %s", exc)


def ingest_in_process(settings: Settings, source: str) -> Ingested:
    """The ingest of ``source`` in this process; the purge must follow when a file applied
    (a failed ingest may have applied some of its files) or a killed run left work."""
    from hotlist.ingest import IngestFailed, ingest_source
    from hotlist.store.pending import pending_work

    try:
        outcomes = ingest_source(settings, source)
        failed: IngestFailed | None = None
    except IngestFailed as exc:
        outcomes, failed = list(exc.outcomes), exc
    applied = [o for o in outcomes if getattr(o, "verdict", None) == "applied"]
    purge = bool(applied) or bool(pending_work(settings.data_dir, settings.published_dir))
    return Ingested(f"{len(applied)} files applied", purge, failed)


def purge_in_process(settings: Settings) -> str:
    """The purge in this process: publish, erase what was removed, verify, report."""
    from hotlist.purge import default_prefect_home, purge

    result = purge(settings, default_prefect_home(), list(settings.purge.scan_paths))
    return f"purge run {result.run_id}: {result.purged} records purged"


def in_process(
    settings: Settings, sources: list[str] | None = None, interval_s: float | None = None
) -> Watcher:
    """A watcher whose ingests and purges run in this process (``hotlist watch``)."""
    return Watcher(
        settings,
        lambda name: ingest_in_process(settings, name),
        lambda: purge_in_process(settings),
        sources,
        interval_s,
    )
