"""An ingest flow run, then a purge flow run: what a deployment's trigger does, for runs
outside a deployment (``hotlist ingest --prefect``, the demo, tests).

The ingest flow modules never import this one (nor the purge flow), so an ingest flow
run's process loads no purge code.
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State

from flows.ingest_ncic import ingest_ncic
from flows.ingest_svs import ingest_svs
from flows.purge import purge

INGEST_FLOWS = {"ncic": ingest_ncic, "svs": ingest_svs}


def ingest_then_purge(
    source: str, config: str | None, approve_mass_removal: str | None = None
) -> tuple[State[dict[str, Any]], State[dict[str, Any]] | None]:
    """The source's ingest flow run, then (unless it completed with nothing applied and
    nothing left pending by a killed run) a purge flow run. A failed ingest may still have applied its other files, so the purge
    runs after it too."""
    flow = INGEST_FLOWS[source]
    ingested = flow(config=config, approve_mass_removal=approve_mass_removal, return_state=True)
    if ingested.is_completed() and not (
        ingested.result()["files_applied"] or ingested.result()["pending"]
    ):
        return ingested, None
    return ingested, purge(config=config, return_state=True)
