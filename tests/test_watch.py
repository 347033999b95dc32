"""Change detection: a stat-only check of each source that ingests (and purges) on a change."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotlist.config import Settings, SourceConfig
from hotlist.lookup import find_hits
from hotlist.sources import FetchError
from hotlist.sources.probe import ABSENT, Prober
from hotlist.watch import Ingested, Watcher, changed_names, in_process, ingest_in_process
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line
from tests.cli_support import config_of
from tests.sshd_server import start_sshd

NCIC_DAY1 = [ncic_line(f"V{i:09d}", f"1AAA{i:03d}") for i in range(40)]


def _day1(drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    for name in ("svs.tbl", "sfr.tbl", "slr.tbl"):
        drop.put(name, clew_file([clew_line(f"{name[:2].upper()}{i:04d}") for i in range(40)]))


def _watcher(settings: Settings, sources: list[str] | None = None) -> tuple[Watcher, list[str]]:
    """A watcher running in this process, and the names of the steps it ran, in order."""
    ran: list[str] = []
    steps = in_process(settings, sources)

    def ingest(name: str) -> Ingested:
        ran.append(name)
        return steps.ingest(name)

    def purge() -> str:
        ran.append("purge")
        return steps.purge()

    return Watcher(settings, ingest, purge, sources), ran


def _ingest_and_purge(settings: Settings, source: str) -> None:
    watcher = in_process(settings, [source])
    watcher.ingest(source)
    watcher.purge()


def test_the_first_check_ingests_then_only_a_change_does(settings: Settings, drop: Drop) -> None:
    """Nothing says what happened while nobody watched, so the first check ingests; after
    that an unchanged upstream costs a stat, and a new extract is ingested and purged."""
    _day1(drop)
    watcher, ran = _watcher(settings, ["ncic"])
    [ncic] = watcher.watched
    with ncic.prober:
        assert watcher.check(ncic) is True
        assert find_hits(settings.data_dir, "1AAA001")
        assert watcher.check(ncic) is False
        assert watcher.check(ncic) is False
        drop.put("VEHEXTRT.txt", ncic_file([*NCIC_DAY1[:1], *NCIC_DAY1[2:]], "202611230800"))
        assert watcher.check(ncic) is True
    assert ran == ["ncic", "purge", "ncic", "purge"]
    assert not find_hits(settings.data_dir, "1AAA001")  # removed upstream, gone here
    assert find_hits(settings.data_dir, "1AAA002")


def _round(watcher: Watcher) -> None:
    """One round of checks: every source due at once, then the purge if one is due."""
    for w in watcher.watched:
        w.due = 0.0
    watcher.run(max_seconds=0)


def test_sources_that_change_together_share_one_purge(settings: Settings, drop: Drop) -> None:
    """CLEW and NCIC published in the same minute: both ingests, then one purge that
    erases both sources' removals (a purge per source would publish and verify twice)."""
    _day1(drop)
    watcher, ran = _watcher(settings)
    _round(watcher)  # the first check of each source
    assert ran == ["ncic", "svs", "purge"]
    assert find_hits(settings.data_dir, "1AAA001") and find_hits(settings.data_dir, "SV0001")
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1[2:], "202611230800"))
    day2 = [clew_line(f"SV{i:04d}") for i in range(2, 40)]
    drop.put("svs.tbl", clew_file(day2, "DATE11/23/2026 08:00"))
    ran.clear()
    _round(watcher)
    assert ran == ["ncic", "svs", "purge"]
    assert not find_hits(settings.data_dir, "1AAA001")
    assert not find_hits(settings.data_dir, "SV0001")
    assert find_hits(settings.data_dir, "SV0002")
    _round(watcher)
    assert ran == ["ncic", "svs", "purge"]  # nothing changed: no ingest, no purge


def test_a_file_that_lands_while_another_source_ingests_joins_that_purge(
    settings: Settings, drop: Drop
) -> None:
    """CLEW's tables land a second before NCIC's extract is complete: the round that
    ingests CLEW checks NCIC again before its purge, so NCIC's removals are published by
    the same purge instead of waiting a whole purge (~10 s at 2M lines) for the next
    round."""
    _day1(drop)
    watcher, ran = _watcher(settings)
    _round(watcher)
    ran.clear()
    real_ingest = watcher.ingest

    def ingest(name: str) -> Ingested:
        done = real_ingest(name)
        if name == "svs":  # NCIC's extract completes while CLEW's ingest runs
            drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1[2:], "202611230800"))
        return done

    watcher.ingest = ingest
    drop.put(
        "svs.tbl",
        clew_file([clew_line(f"SV{i:04d}") for i in range(2, 40)], "DATE11/23/2026 08:00"),
    )
    _round(watcher)
    assert ran == ["svs", "ncic", "purge"]
    assert not find_hits(settings.data_dir, "1AAA001")
    assert not find_hits(settings.data_dir, "SV0001")
    _round(watcher)
    assert ran == ["svs", "ncic", "purge"]  # nothing changed since: no ingest, no purge


def test_work_a_killed_run_left_is_purged_though_nothing_new_arrived(
    settings: Settings, drop: Drop
) -> None:
    """A version applied but never published (the run was killed before its purge): the
    first check finds nothing new upstream, and still runs the purge that publishes it."""
    from hotlist.ingest import ingest_source
    from hotlist.publish import read_current

    _day1(drop)
    ingest_source(settings, "ncic")  # applied; its purge never ran
    assert read_current(settings.published_dir) is None
    watcher, ran = _watcher(settings, ["ncic"])
    _round(watcher)
    assert ran == ["ncic", "purge"]
    assert read_current(settings.published_dir) is not None


def test_a_new_companion_alone_counts_as_a_change(settings: Settings, drop: Drop) -> None:
    """An upstream that publishes the ``.sha256`` after the file is seen at that moment."""
    _day1(drop)
    marks = Prober(settings.source("ncic")).probe()
    assert marks["VEHEXTRT.txt.sha256"] == ABSENT
    drop.put("VEHEXTRT.txt.sha256", "0" * 64 + "  VEHEXTRT.txt\n")
    after = Prober(settings.source("ncic")).probe()
    assert changed_names(marks, after) == ["VEHEXTRT.txt.sha256"]


def test_a_failed_fetch_is_tried_again_at_the_next_check(settings: Settings, drop: Drop) -> None:
    """A fetch that fails for want of the connection leaves the marks as they were."""
    _day1(drop)
    calls: list[str] = []

    def flaky(name: str) -> Ingested:
        calls.append(name)
        if len(calls) == 1:
            from hotlist.sources import FetchFailure

            raise FetchError(FetchFailure.CONNECTION_DROPPED, "the link dropped")
        return ingest_in_process(settings, name)

    watcher = Watcher(settings, flaky, in_process(settings).purge, ["ncic"])
    [ncic] = watcher.watched
    assert watcher.check(ncic) and ncic.marks is None
    assert watcher.check(ncic) and ncic.marks is not None
    assert watcher.check(ncic) is False
    assert find_hits(settings.data_dir, "1AAA001")


def test_a_refused_file_is_not_fetched_again_until_it_changes(
    settings: Settings, drop: Drop
) -> None:
    _day1(drop)
    watcher, ran = _watcher(settings, ["ncic"])
    [ncic] = watcher.watched
    assert watcher.check(ncic) is True
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1[1:], "202601010800"))  # older: a replay
    assert watcher.check(ncic) is True
    assert ncic.failures == ["IngestFailed"]
    assert watcher.check(ncic) is False
    assert ran == ["ncic", "purge", "ncic"]  # the refused file applied nothing: no purge
    assert find_hits(settings.data_dir, "1AAA000")  # the refused file removed nothing


def test_sftp_checks_share_one_session_and_reconnect_after_a_drop(tmp_path: Path) -> None:
    """Against a real OpenSSH server: polls reuse the open session; once the link drops,
    the next poll opens a new one."""
    server = start_sshd()
    try:
        remote = server.root / "drop"
        remote.mkdir(mode=0o755)
        (remote / "VEHEXTRT.txt").write_text(ncic_file(NCIC_DAY1))
        source = SourceConfig.model_validate(
            {
                "url": server.url_for(remote),
                "layout": "ncic-fixed",
                "files": {"ncic": "VEHEXTRT.txt"},
                "private_key": server.client_key,
                "known_hosts": server.known_hosts,
                "connect_timeout_s": 5.0,
                "read_timeout_s": 5.0,
            }
        )
        with Prober(source) as prober:
            first = prober.probe()
            assert prober.probe() == first
            assert prober.connections == 1
            (remote / "VEHEXTRT.txt.sha256").write_text("0" * 64 + "  VEHEXTRT.txt\n")
            assert changed_names(first, prober.probe()) == ["VEHEXTRT.txt.sha256"]
            assert prober.connections == 1
            client = prober._client
            assert client is not None
            transport = client.get_transport()
            assert transport is not None
            transport.close()  # the link drops
            assert prober.probe()["VEHEXTRT.txt"] == first["VEHEXTRT.txt"]
            assert prober.connections == 2
    finally:
        server.close()


def test_hotlist_watch_ingests_a_change_and_stops_on_sigterm(
    settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    """The command: ingests what is there, then a new extract within a few checks, and
    exits 0 on SIGTERM."""
    _day1(drop)
    out = tmp_path / "watch.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLIST_", "PREFECT_API"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    with open(out, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hotlist",
                "watch",
                "-c",
                config_of(settings),
                "--interval",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _until(lambda: bool(find_hits(settings.data_dir, "1AAA001")), proc, out)
        drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1[2:], "202611230800"))
        _until(lambda: not find_hits(settings.data_dir, "1AAA001"), proc, out)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert "SIGTERM: stopping" in text and text.rstrip().endswith("stopped")


def _until(done: object, proc: subprocess.Popen[bytes], log: Path, within_s: float = 90) -> None:
    assert callable(done)
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(Exception):  # the store is being written: ask again
            if done():
                return
        if proc.poll() is not None:
            raise AssertionError(f"hotlist watch exited: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {within_s} s: {log.read_text()[-3000:]}")
        time.sleep(0.2)


# -- under Prefect ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect API (prefect_test_harness) with its own PREFECT_HOME."""
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with (
        prefect.settings.temporary_settings(updates={prefect.settings.PREFECT_HOME: home}),
        prefect_test_harness(server_startup_timeout=240),
    ):
        yield str(prefect.settings.PREFECT_API_URL.value())


def _flow_runs_since(started: dt.datetime, completed: bool = False) -> dict[str, int]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=started)),
            limit=200,
        )
        names = {f.id: f.name for f in client.read_flows(limit=200)}
    counts: dict[str, int] = {}
    for run in runs:
        if completed and not (run.state and run.state.is_completed()):
            continue
        counts[names[run.flow_id]] = counts.get(names[run.flow_id], 0) + 1
    return counts


def test_the_watcher_flow_costs_one_flow_run_idle_and_ingests_and_purges_a_change(
    prefect_api: str, settings: Settings, drop: Drop
) -> None:
    """One watch-sources flow run checks every second; only the first check (what
    happened before it started) and the change start flow runs: an ingest each, and a
    purge for the one that applied a file."""
    from flows.watch import watch_sources

    _day1(drop)
    _ingest_and_purge(settings, "ncic")
    started = dt.datetime.now(dt.UTC)

    def change_later() -> None:
        # after the first check's ingest, and a few idle checks
        while not _flow_runs_since(started, completed=True).get("ingest-ncic"):
            time.sleep(0.5)
        time.sleep(3)
        drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1[1:], "202611230800"))

    changer = threading.Thread(target=change_later)
    changer.start()
    result = watch_sources(
        config=config_of(settings), sources=["ncic"], minutes=0.5, interval_seconds=1
    )
    changer.join()
    assert result["ncic"]["ingests"] == 2 and result["ncic"]["failures"] == []
    assert result["purge"] == {"runs": 1, "failures": []}
    assert result["ncic"]["checks"] >= 10
    assert _flow_runs_since(started) == {"watch-sources": 1, "ingest-ncic": 2, "purge": 1}
    assert not find_hits(settings.data_dir, "1AAA000")


def test_prefect_deploy_all_registers_the_hourly_watcher_in_its_own_pool(
    prefect_api: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_HOME": str(tmp_path / "deploy-home"),
        "HOTLIST_HOME": str(Path.cwd()),
    }

    def prefect(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    for pool in ("hotlist", "hotlist-watch"):
        prefect("work-pool", "create", pool, "--type", "process", "--overwrite")
    prefect("deploy", "--all")
    inspected = prefect("deployment", "inspect", "watch-sources/watch-sources")
    assert "'work_pool_name': 'hotlist-watch'" in inspected
    assert "'interval': 3600.0" in inspected
    assert "'collision_strategy': 'ENQUEUE'" in inspected
