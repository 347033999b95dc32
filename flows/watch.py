"""Prefect flow: watch the sources for a change; on one, the ingest and the purge at once.

A long-running flow run (``minutes`` long, one an hour from its deployment) rather than a
check deployment on an interval: an idle hour costs Prefect one flow run and no task
run, where a check every minute would cost sixty flow runs, each in a new process with a
new SFTP connection. The checks are stats (:mod:`hotlist.sources.probe`), the SFTP
session stays open between them, and a change runs the source's ingest flow, then the
purge flow once for every source that changed in the round, as subflow runs in this
process: no worker pickup or process start between a change and its purge. ``docs/freshness.md`` has the figures behind the choice.

The watcher writes through the same store writer lock as the scheduled deployments, so
it runs in a work pool of its own (``hotlist-watch``): in the writers' pool it would hold
the pool's one slot for its whole run. Its parameters and results are names and counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from hotlist.config import load_settings
from hotlist.watch import Ingested, Watcher


class ChangeNotApplied(Exception):
    """The ingest or purge flow run a change started did not complete."""


@flow(name="watch-sources")
def watch_sources(
    config: str | None = None,
    sources: list[str] | None = None,
    minutes: float = 60.0,
    interval_seconds: float | None = None,
) -> dict[str, Any]:
    """Check the sources until ``minutes`` have passed; ingest and purge on each change.

    Args:
        config: path of the hotlist TOML configuration (default: HOTLIST_CONFIG).
        sources: the sources to watch (default: every configured one).
        minutes: how long this flow run watches before it ends (the next one follows).
        interval_seconds: seconds between checks (default: each source's poll_seconds).
    """
    from flows.ingest_then_purge import INGEST_FLOWS
    from flows.purge import purge

    settings = load_settings(Path(config) if config else None)
    logger = get_run_logger()

    def ingest(source: str) -> Ingested:
        state = INGEST_FLOWS[source](config=config, return_state=True)
        if not state.is_completed():  # it may have applied some of its files: purge
            failure = ChangeNotApplied(f"{state.name}: {state.message}")
            return Ingested(f"ingest {state.name}", True, failure)
        done = state.result()
        return Ingested(f"ingest {done}", bool(done["files_applied"] or done["pending"]))

    def purge_all() -> str:
        state = purge(config=config, return_state=True)
        if not state.is_completed():
            raise ChangeNotApplied(f"{state.name}: {state.message}")
        return f"purge {state.result()}"

    watcher = Watcher(settings, ingest, purge_all, sources, interval_seconds)
    logger.info(
        "watching %s for %g minutes",
        ", ".join(f"{w.name} every {w.every_s:g} s" for w in watcher.watched),
        minutes,
    )
    watcher.run(max_seconds=minutes * 60)
    return {
        **{
            w.name: {"checks": w.checks, "ingests": w.runs, "failures": w.failures}
            for w in watcher.watched
        },
        "purge": {"runs": watcher.purges, "failures": watcher.purge_failures},
    }


if __name__ == "__main__":
    watch_sources()
