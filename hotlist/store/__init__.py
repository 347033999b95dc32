"""The DuckDB hotlist store.

Layout under ``data_dir``::

    store/control.duckdb             ids only: versions, change log, tombstones, file events
    store/feeds/<feed>/v<N>.duckdb   the content of one feed at version N (entries, quarantine)
    store/state.json                 what readers need: current files, counts, last events
    store/spill/                     DuckDB's temporary files while a writer runs

Every applied file writes a **fresh** content file for its feed; the new version is
current once the control database has committed it. The superseded file is kept until
the purge (:mod:`hotlist.purge`) has searched it for the content of the records the new
version removed, then scrubbed (overwritten, fsynced, unlinked). So content of removed
records never lingers in a DuckDB file (no delete vectors, no free blocks), readers open
immutable content files read-only and never wait for the writer, and a run killed at any
moment leaves the previous version whole: the next writer scrubs what no version refers
to (:func:`hotlist.store.content.recover`) and finishes what is pending
(:func:`hotlist.store.pending.pending_work`).
"""

from __future__ import annotations

import os
from pathlib import Path

FEEDS = ("svs", "sfr", "slr", "ncic")


def store_dir(data_dir: Path) -> Path:
    return data_dir / "store"


def control_path(data_dir: Path) -> Path:
    return store_dir(data_dir) / "control.duckdb"


def feed_dir(data_dir: Path, feed: str) -> Path:
    return store_dir(data_dir) / "feeds" / feed


def content_path(data_dir: Path, feed: str, version: int) -> Path:
    return feed_dir(data_dir, feed) / f"v{version:09d}.duckdb"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700: state is for this service only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
