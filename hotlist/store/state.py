"""``store/state.json``: what readers need, written by the writer after every change.

Readers (``hotlist status``, ``hotlist lookup``, the API) read this file and open the
immutable content files it names read-only; they never open the control database, so
they never wait for, or block, a writer.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import duckdb

from hotlist.sources.landing import fsync_dir
from hotlist.store import control as ctl
from hotlist.store import private_dir, store_dir

STATE_FILE = "state.json"


def state_path(data_dir: Path) -> Path:
    return store_dir(data_dir) / STATE_FILE


def build_state(con: duckdb.DuckDBPyConnection, data_dir: Path) -> dict[str, Any]:
    current = ctl.current_versions(con, data_dir)
    events = ctl.last_events(con)
    feeds: dict[str, Any] = {}
    for feed in sorted(set(current) | set(events)):
        version = current.get(feed)
        last_good = ctl.one(
            con,
            "SELECT name, occurred_at, sha256 FROM file_events WHERE feed = ? AND verdict = 'applied'"
            " ORDER BY event_id DESC LIMIT 1",
            [feed],
        )
        feeds[feed] = {
            "version": version.version if version else None,
            "content_file": str(version.content_file.relative_to(data_dir)) if version else None,
            "entries": version.entries if version else 0,
            "quarantined": version.quarantined if version else 0,
            "applied_at": version.created_at.isoformat() if version else None,
            "extract_time": version.extract_time.isoformat()
            if version and version.extract_time
            else None,
            "last_good_file": None
            if last_good is None
            else {"name": last_good[0], "at": last_good[1].isoformat(), "sha256": last_good[2]},
            "last_event": events.get(feed),
        }
    versions = [v.version for v in current.values()]
    return {
        "hotlist_version": max(versions) if versions else 0,
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "feeds": feeds,
    }


def write_state(con: duckdb.DuckDBPyConnection, data_dir: Path) -> dict[str, Any]:
    """Rebuild state.json from the control database, atomically."""
    state = build_state(con, data_dir)
    path = state_path(data_dir)
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return state


def read_state(data_dir: Path) -> dict[str, Any]:
    """The last written state, or an empty one before the first ingest."""
    try:
        with open(state_path(data_dir), encoding="utf-8") as fh:
            state: dict[str, Any] = json.load(fh)
            return state
    except FileNotFoundError:
        return {"hotlist_version": 0, "written_at": None, "feeds": {}}
