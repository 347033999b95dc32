"""Readers of the control database never crash because of a writer: they wait, bounded
and saying so, or fail with a message that names who holds the store. A writer waits for
readers likewise. A run that takes the writer lock can ask what a killed run left."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hotlist.config import Settings
from hotlist.ingest import ingest_source, rebuild_state
from hotlist.purge import purge
from hotlist.store import control as ctl
from hotlist.store import feed_dir
from hotlist.store.lock import StoreBusy
from hotlist.store.pending import pending_work
from hotlist.store.spill import spill_dir
from tests import crash
from tests.builders import Drop, ncic_file, ncic_line

DAY1 = [ncic_line(f"V{i:09d}", f"7R{i:05d}") for i in range(40)]
DAY2 = [*DAY1[:-2], ncic_line("V000000900", "7R00900")]


@contextmanager
def _holding(data_dir: Path, how: str, seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holds the control database (``writer``: under the writer lock,
    read-write; ``reader``: read-only) for ``seconds`` once it is open."""
    ready = data_dir.parent / f"{how}.ready"
    hold = {
        "writer": "from hotlist.store.lock import writer_lock\n"
        "with writer_lock(d), ctl.connect(d):\n",
        "reader": "with ctl.read_only(d):\n",
    }[how]
    code = (
        "import time; from pathlib import Path; from hotlist.store import control as ctl\n"
        f"d = Path({str(data_dir)!r})\n{hold}"
        f"    Path({str(ready)!r}).touch(); time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        while not ready.exists():
            assert proc.poll() is None, "the holder died before it held the store"
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
def loaded(settings: Settings, drop: Drop) -> Settings:
    drop.put("VEHEXTRT.txt", ncic_file(DAY1))
    ingest_source(settings, "ncic")
    return settings


def test_a_reader_waits_for_a_writer_saying_so_then_reads(loaded: Settings) -> None:
    told: list[str] = []
    with (
        _holding(loaded.data_dir, "writer", 3) as writer,
        ctl.read_only(loaded.data_dir, wait_s=60, on_wait=told.append) as con,
    ):
        [(versions,)] = con.execute("SELECT count(*) FROM versions").fetchall()
    assert versions == 1
    [message] = told
    assert f"pid {writer.pid}" in message and "waiting up to 60 s" in message


def test_a_reader_gives_up_after_its_bound_naming_the_writer(loaded: Settings) -> None:
    with (
        _holding(loaded.data_dir, "writer", 60) as writer,
        pytest.raises(StoreBusy) as busy,
        ctl.read_only(loaded.data_dir, wait_s=0.5),
    ):
        pass
    assert "control.duckdb is still in use by a writer" in str(busy.value)
    assert f"pid {writer.pid}" in str(busy.value) and "after 0.5 s" in str(busy.value)


def test_a_writer_waits_for_a_reader(loaded: Settings) -> None:
    told: list[str] = []
    with _holding(loaded.data_dir, "reader", 2):
        con = ctl.connect(loaded.data_dir, wait_s=60, on_wait=told.append)
        con.close()
    [message] = told
    assert "in use by a reader" in message


def test_a_reader_writes_nothing_and_needs_a_store(tmp_path: Path, loaded: Settings) -> None:
    missing = tmp_path / "no such dir"
    with pytest.raises(ctl.NoStore, match="no hotlist store at"), ctl.read_only(missing):
        pass
    assert not missing.exists()
    with ctl.read_only(loaded.data_dir) as con:
        assert con.sql("SELECT current_setting('temp_directory')").fetchall() == [("",)]


def test_a_kill_after_the_commit_leaves_work_the_next_run_can_see(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings("guards = {max_removal_share = 0.5}")
    assert not pending_work(settings.data_dir, settings.published_dir)  # no store: nothing to do
    drop.put("VEHEXTRT.txt", ncic_file(DAY1))
    ingest_source(settings, "ncic")
    purge(settings, None)
    assert not pending_work(settings.data_dir, settings.published_dir)
    drop.put("VEHEXTRT.txt", ncic_file(DAY2, stamp="202611221800"))
    crash.killed_at(settings, "after-commit", "ingest_source(s, 'ncic')")
    pending = pending_work(settings.data_dir, settings.published_dir)
    assert pending.unpublished and pending.store_version == 2 and pending.published_version == 1
    assert (pending.unpurged, pending.superseded) == (2, 1)
    assert "version 2 is not published" in pending.describe()
    assert ingest_source(settings, "ncic") == []  # nothing new upstream...
    assert pending_work(
        settings.data_dir, settings.published_dir
    )  # ...and the work is still there to be done
    purge(settings, None)
    assert not pending_work(settings.data_dir, settings.published_dir), pending_work(
        settings.data_dir, settings.published_dir
    ).describe()


def test_leftovers_of_a_killed_writer_are_scrubbed_not_just_unlinked(
    loaded: Settings, tmp_path: Path
) -> None:
    """A second name for each leftover shows its blocks: zeros after the next writer ran."""
    content = b"7R00001 CA record content\n" * 100
    leftovers = [
        feed_dir(loaded.data_dir, "ncic") / "v000000099.duckdb.tmp",
        feed_dir(loaded.data_dir, "ncic") / "v000000099.duckdb.tmp.wal",
        spill_dir(loaded.data_dir) / "duckdb_temp_storage-0.tmp",
    ]
    witnesses = []
    for n, path in enumerate(leftovers):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        witness = tmp_path / f"witness-{n}"
        witness.hardlink_to(path)
        witnesses.append(witness)
    rebuild_state(loaded.data_dir)
    assert not any(path.exists() for path in leftovers)
    assert [w.read_bytes() for w in witnesses] == [bytes(len(content))] * 3


def test_a_manual_ingest_after_a_kill_past_the_commit_publishes_and_purges(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    """`hotlist ingest` in-process finds nothing new upstream, but finishes what the killed
    run left (publish and purge), instead of leaving it to the hourly sweep."""
    from typer.testing import CliRunner

    from hotlist.cli import app

    settings = make_settings("guards = {max_removal_share = 0.5}")
    config = str(settings.data_dir.parent / "hotlist.toml")
    drop.put("VEHEXTRT.txt", ncic_file(DAY1))
    ingest_source(settings, "ncic")
    purge(settings, None)
    drop.put("VEHEXTRT.txt", ncic_file(DAY2, stamp="202611221800"))
    crash.killed_at(settings, "after-commit", "ingest_source(s, 'ncic')")
    done = CliRunner().invoke(app, ["ingest", "ncic", "--no-prefect", "-c", config])
    assert done.exit_code == 0, done.output
    assert "pending from an earlier run" in done.output
    assert "2 records purged" in done.output
    assert not pending_work(settings.data_dir, settings.published_dir), pending_work(
        settings.data_dir, settings.published_dir
    ).describe()
