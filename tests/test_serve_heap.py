"""A server process keeps what it holds for good (its imports, the version it serves)
out of the garbage collector's full passes, which would scan it all with the event loop
stopped; a server in a thread of another program leaves that program's heap alone."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from fastapi import FastAPI

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.serve.app import create_app
from tests.builders import Drop, ncic_file, ncic_line


def _frozen_while_serving(app: FastAPI, then: Callable[[], object]) -> tuple[int, int, int]:
    """(objects frozen once started, after ``then``, after shutdown)."""

    async def run() -> tuple[int, int, int]:
        async with app.router.lifespan_context(app):
            started = gc.get_freeze_count()
            then()
            loaded = gc.get_freeze_count()
        return started, loaded, gc.get_freeze_count()

    return asyncio.run(run())


def test_a_server_process_freezes_its_heap_once_started_and_each_version_it_loads(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings()
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7ABC123")], stamp="202611210800"))
    ingest_source(settings, "ncic")
    assert purge(settings, None).verification.ok
    app = create_app(settings)
    app.state.settle_heap = True  # as `hotlist serve` sets it
    versions = app.state.services.versions
    started, loaded, after = _frozen_while_serving(app, lambda: versions.current(wait=True))
    assert started > 0
    assert loaded > started  # the version's objects joined the frozen ones
    assert after == 0  # released at shutdown


def test_a_server_in_a_thread_of_another_program_freezes_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())
    assert _frozen_while_serving(app, lambda: None) == (0, 0, 0)
