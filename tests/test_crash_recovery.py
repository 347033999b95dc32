"""A writer killed with SIGKILL at any step leaves the previous version whole; the next run finishes."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.lookup import find_hits
from hotlist.purge import purge
from hotlist.store import control_path, feed_dir
from hotlist.store.state import read_state
from tests import crash
from tests.builders import Drop, ncic_file, ncic_line

DAY1 = [ncic_line(f"V{i:09d}", f"7D1{i:04d}") for i in range(200)]
DAY2 = DAY1[:-4] + [ncic_line(f"V{i:09d}", f"7D2{i:04d}") for i in range(1000, 1003)]


def _tombstones(settings: Settings) -> int:
    con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM tombstones").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def _assert_finished_day2(settings: Settings) -> None:
    state = read_state(settings.data_dir)["feeds"]["ncic"]
    assert state["entries"] == 199
    assert find_hits(settings.data_dir, "7D10199") == []
    assert len(find_hits(settings.data_dir, "7D21000")) == 1
    # The current file, and the superseded one the purge erases: no orphan of the kill.
    files = sorted(p.name for p in feed_dir(settings.data_dir, "ncic").iterdir())
    assert files == ["v000000001.duckdb", Path(state["content_file"]).name]
    assert _tombstones(settings) == 4
    purge(settings, None)
    assert [p.name for p in feed_dir(settings.data_dir, "ncic").iterdir()] == [
        Path(state["content_file"]).name
    ]


@pytest.mark.parametrize(
    "point", ["after-content-file", "before-commit", "after-commit", "after-state"]
)
def test_a_writer_killed_at_each_step_leaves_a_whole_version_and_the_next_run_completes(
    make_settings: Callable[..., Settings], drop: Drop, point: str
) -> None:
    settings = make_settings("guards = {max_removal_share = 0.5}")
    drop.put("VEHEXTRT.txt", ncic_file(DAY1))
    ingest_source(settings, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file(DAY2, stamp="202611221800"))
    crash.killed_at(settings, point, "ingest_source(s, 'ncic')")
    # Readers see one whole version, old or new, never a mix and never an error.
    hits_old = find_hits(settings.data_dir, "7D10199")
    hits_new = find_hits(settings.data_dir, "7D21000")
    assert len(hits_old) + len(hits_new) == 1
    ingest_source(settings, "ncic")
    _assert_finished_day2(settings)


def test_a_writer_killed_at_random_moments_never_corrupts_the_store(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings("guards = {max_removal_share = 0.5}")
    big1 = DAY1 + [ncic_line(f"P{i:09d}", f"8B{i:06d}") for i in range(60_000)]
    big2 = DAY2 + [ncic_line(f"P{i:09d}", f"8B{i:06d}") for i in range(60_000)]
    drop.put("VEHEXTRT.txt", ncic_file(big1))
    ingest_source(settings, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file(big2, stamp="202611221800"))
    for delay in (0.6, 1.0, 1.4, 1.8):
        proc = crash.start(settings, "ingest_source(s, 'ncic')")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert (
            len(find_hits(settings.data_dir, "7D10199"))
            + len(find_hits(settings.data_dir, "7D21000"))
            == 1
        )
    ingest_source(settings, "ncic")
    state = read_state(settings.data_dir)["feeds"]["ncic"]
    assert state["entries"] == 60_199
    assert _tombstones(settings) == 4
