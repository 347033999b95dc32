"""Prefect flow: propagate deletions to every local copy, verify, report.

Its own flow run, in its own process: started after every ingest that applied a file
(the ``purge-sweep`` deployment's trigger on ``hotlist.ingest.applied``; outside a
deployment, ``flows.ingest_then_purge``), and hourly as a sweep. Its parameters
and results are counts and paths: never record content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import prefect.settings
from prefect import flow, get_run_logger, task

from hotlist import audit
from hotlist.chance import grouped
from hotlist.config import load_settings
from hotlist.purge import purge as run_purge


@task(name="purge-and-verify", retries=2, retry_delay_seconds=[30, 120])
def purge_and_verify(config: str | None) -> dict[str, Any]:
    settings = load_settings(Path(config) if config else None)
    home = Path(prefect.settings.PREFECT_HOME.value())
    result = run_purge(settings, home, list(settings.purge.scan_paths))
    # The access log's head, copied outside this machine's disk (SB 34 tamper evidence).
    audit.publish_artifact(audit.anchor(settings, f"purge flow, run {result.run_id:,}"))
    get_run_logger().info(
        "%s",
        grouped(
            f"purge run {result.run_id}: {result.purged} records purged,"
            f" {result.files_erased} files erased; {result.verification.summary()}"
        ),
    )
    return {
        "run_id": result.run_id,
        "purged": result.purged,
        "files_erased": result.files_erased,
        "verified": result.verification.ok,
        "report": str(result.report) if result.report else None,
    }


@flow(name="purge")
def purge(config: str | None = None) -> dict[str, Any]:
    """Erase removed records from every local copy, verify it, write the deletion report.

    Args:
        config: path of the hotlist TOML configuration (default: HOTLIST_CONFIG).
    """
    return purge_and_verify(config)


if __name__ == "__main__":
    purge()
