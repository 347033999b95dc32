"""The server's long-lived objects, kept out of the garbage collector's full passes.

A server holds some 100,000 objects for good once it has started (its imports:
FastAPI's, pydantic's, polars', the routes and schemas) and the version it serves. A
full (gen 2) collection scans every one of them each time, 70-90 ms on this project's
bench machine, with the event loop stopped: the largest stalls of a loaded server's
lookups. :func:`settle` moves what is alive now into the interpreter's permanent
generation (``gc.freeze``), which no collection scans; objects made later are collected
as before, and the frozen ones are still freed by reference counting when dropped (a
replaced version's frames and index are), only a cycle among them is never collected.
"""

from __future__ import annotations

import gc


def settle(full: bool = False) -> None:
    """Freeze what is alive now. ``full``: after a full collection first (at start-up,
    before anything is served, so no garbage is frozen with the rest); else after the
    young generations' (cheap: what a version load left behind is young)."""
    gc.collect(2 if full else 1)
    gc.freeze()


def release() -> None:
    """At shutdown: let the collector see everything again, so the interpreter's
    teardown finds nothing held."""
    gc.unfreeze()
