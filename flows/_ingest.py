"""Tasks shared by the ingest flows: fetch (retried when a retry can help) and apply.

An ingest flow run does not purge: when it applied a file it emits a
``hotlist.ingest.applied`` event, and the ``purge-sweep`` deployment's trigger
(prefect.yaml) starts the purge as its own flow run, in its own process, as soon as the
writers' pool lets it (after the ingest). Runs outside a deployment (``hotlist ingest
--prefect``, the demo) use ``flows.ingest_then_purge``, which runs the same two flow runs
one after the other. Imports run one way: the flow modules import this one, never the
reverse.

Tasks exchange paths, hashes, ids and counts; record content never passes through
Prefect (parameters, results, events and log lines all land in Prefect's database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.client.schemas.objects import State, TaskRun
from prefect.events import emit_event
from prefect.tasks import Task

from hotlist.chance import grouped
from hotlist.config import load_settings
from hotlist.ingest import IngestFailed, Outcome, Rejection, acquire, apply_landed, describe
from hotlist.sources import FetchError, LandedFile, Unchanged
from hotlist.status import feed_statuses
from hotlist.store.pending import pending_work


def _retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a dropped connection or a timeout; fail at once on a refused key or a missing file."""
    try:
        state.result()
    except FetchError as exc:
        return exc.transient
    except Exception:
        return False
    return False


@task(
    name="fetch-files",
    retries=4,
    retry_delay_seconds=[5, 30, 120, 300],
    retry_condition_fn=_retry_if_transient,
)
def fetch_files(config: str | None, source: str) -> list[LandedFile | Unchanged]:
    settings = load_settings(Path(config) if config else None)
    fetched = acquire(settings, source)
    logger = get_run_logger()
    for item in fetched:
        if isinstance(item, Unchanged):
            logger.info("%s/%s unchanged upstream", item.feed, item.name)
        else:
            logger.info(
                "%s",
                grouped(
                    f"{item.feed}/{item.name} landed: {item.size} bytes, sha256={item.sha256[:12]}"
                ),
            )
    return fetched


@task(name="apply-file")
def apply_file(
    config: str | None, source: str, landed: LandedFile, approve_mass_removal: str | None
) -> Outcome:
    settings = load_settings(Path(config) if config else None)
    outcome = apply_landed(settings, source, landed, approve_mass_removal)
    logger = get_run_logger()
    if isinstance(outcome, Rejection):
        logger.error("%s", grouped(describe(outcome)))
    else:
        logger.info("%s", grouped(describe(outcome)))
    return outcome


APPLIED_EVENT = "hotlist.ingest.applied"


def run_ingest(source: str, config: str | None, approve_mass_removal: str | None) -> dict[str, Any]:
    """Fetch and apply every landed file; announce what applied, or what a killed run left
    pending (the purge follows on that event), then fail the run if any file was rejected."""
    outcomes = [
        apply_file(config, source, item, approve_mass_removal)
        for item in fetch_files(config, source)
        if isinstance(item, LandedFile)
    ]
    verdicts = [o.verdict for o in outcomes if not isinstance(o, Rejection)]
    # What a killed run left (committed but not published or purged) is finished now, not
    # at the next hourly sweep: the purge follows as if a file had applied.
    settings = load_settings(Path(config) if config else None)
    pending = pending_work(settings.data_dir, settings.published_dir)
    counts: dict[str, Any] = {
        "files_applied": verdicts.count("applied"),
        "files_unchanged": verdicts.count("duplicate"),
        "files_rejected": len(outcomes) - len(verdicts),
        "pending": bool(pending),
    }
    if counts["files_applied"] or pending:
        emit_event(
            APPLIED_EVENT,
            resource={"prefect.resource.id": f"hotlist.source.{source}"},
            payload=counts,
        )
    announce_stale_feeds(config, source)
    if counts["files_rejected"]:
        raise IngestFailed(outcomes)
    return counts


STALE_EVENT = "hotlist.feed.stale"


def announce_stale_feeds(config: str | None, source: str) -> list[str]:
    """Emit ``hotlist.feed.stale`` for each feed of ``source`` that this run leaves stale
    (extract too old, or no successful fetch within ``freshness_hours``): an automation
    can notify on it. Ages and reasons only, no content."""
    stale = [
        s for s in feed_statuses(load_settings(Path(config) if config else None), source_name=source)
        if s.stale
    ]  # fmt: skip
    logger = get_run_logger()
    for status in stale:
        reasons = "; ".join(status.stale_because)
        logger.warning("%s", grouped(f"{source}/{status.feed} is stale: {reasons}"))
        emit_event(
            STALE_EVENT,
            resource={"prefect.resource.id": f"hotlist.feed.{status.feed}"},
            related=[{"prefect.resource.id": f"hotlist.source.{source}", "prefect.resource.role": "source"}],
            payload={
                "extract_age_hours": status.age_hours,
                "fetch_age_hours": status.fetch_age_hours,
                "freshness_hours": status.freshness_hours,
                "reasons": list(status.stale_because),
            },
        )  # fmt: skip
    return [s.feed for s in stale]
