"""Tasks shared by the ingest flows: fetch (retried when a retry can help) and apply.

Tasks exchange paths, hashes, ids and counts; record content never passes through
Prefect (parameters, results and log lines all land in Prefect's database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from flows.purge import purge_and_verify
from hotlist.config import load_settings
from hotlist.ingest import IngestFailed, Outcome, Rejection, acquire, apply_landed, describe
from hotlist.sources import FetchError, LandedFile, Unchanged


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
                "%s/%s landed: %d bytes, sha256 %s",
                item.feed,
                item.name,
                item.size,
                item.sha256[:12],
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
        logger.error("%s", describe(outcome))
    else:
        logger.info("%s", describe(outcome))
    return outcome


def run_ingest(source: str, config: str | None, approve_mass_removal: str | None) -> dict[str, Any]:
    """Fetch, apply every landed file, then purge what was removed; fail the run if any
    file was rejected (after the purge: what did apply is erased on time)."""
    outcomes = [
        apply_file(config, source, item, approve_mass_removal)
        for item in fetch_files(config, source)
        if isinstance(item, LandedFile)
    ]
    verdicts = [o.verdict for o in outcomes if not isinstance(o, Rejection)]
    purged = purge_and_verify(config) if "applied" in verdicts else None
    if any(isinstance(o, Rejection) for o in outcomes):
        raise IngestFailed(outcomes)
    return {
        "files_applied": verdicts.count("applied"),
        "files_unchanged": verdicts.count("duplicate"),
        "purge": purged,
    }
