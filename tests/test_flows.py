"""Flows against a real Prefect API (prefect_test_harness): runs, failures, deployments, and
no record content in anything Prefect stores."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotlist.config import Settings
from hotlist.publish import read_current
from hotlist.store.state import read_state
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line

MARKERS = ["ZQXMRK01", "ZQXMRK02", "ZQXMRK03", "ZQXMRK04", "ZQXMRK05"]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | str]]:
    """One real Prefect API server for the whole session, with its own PREFECT_HOME."""
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with (
        prefect.settings.temporary_settings(
            updates={
                prefect.settings.PREFECT_HOME: home,
                prefect.settings.PREFECT_LOGGING_TO_API_BATCH_INTERVAL: 0.05,
            }
        ),
        prefect_test_harness(server_startup_timeout=240),
    ):
        db_url = prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
        yield {
            "home": home,
            "db": Path(db_url.split("///", 1)[1]),
            "api": str(prefect.settings.PREFECT_API_URL.value()),
        }


def _flush_prefect_logs() -> None:
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()


def _files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                yield path


def _assert_anchor_artifact_of(flow_run_id: object) -> None:
    """The purge flow run copied the access log's head to Prefect (an artifact)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["access-log-anchor"]))
        )
    assert flow_run_id in {a.flow_run_id for a in artifacts}


def test_the_ncic_flow_applies_the_extract_and_keeps_plates_out_of_prefect(
    prefect_api: dict[str, Path | str], make_settings: Callable[..., Settings], drop: Drop
) -> None:
    from flows.ingest_then_purge import ingest_then_purge

    settings = make_settings("guards = {max_row_error_share = 0.5}")
    records = [ncic_line(f"V{i:09d}", plate) for i, plate in enumerate(MARKERS)]
    records.append(
        ncic_line("V000000099", "ZQXBAD@1")
    )  # quarantined: its line stays out of Prefect too
    drop.put("VEHEXTRT.txt", ncic_file(records))
    config = str(settings.data_dir.parent / "hotlist.toml")
    ingested, purged = ingest_then_purge("ncic", config)
    assert ingested.result() == {
        "files_applied": 1,
        "files_unchanged": 0,
        "files_rejected": 0,
        "pending": True,  # applied, not yet published: the purge flow run follows
    }
    assert purged is not None and purged.result()["verified"] is True
    assert read_state(settings.data_dir)["feeds"]["ncic"]["entries"] == len(MARKERS)
    _assert_anchor_artifact_of(purged.state_details.flow_run_id)
    _flush_prefect_logs()
    home, db = Path(prefect_api["home"]), Path(prefect_api["db"])
    scanned = list(_files_under(home, db.parent))
    assert any(p.name.startswith(db.name) for p in scanned)
    for path in scanned:
        data = path.read_bytes()
        for plate in [*MARKERS, "ZQXBAD"]:
            assert plate.encode() not in data, f"{plate} found in {path}"


def test_a_rejected_file_fails_the_flow_run_with_the_rule_named(
    prefect_api: dict[str, Path | str], make_settings: Callable[..., Settings], drop: Drop
) -> None:
    from flows.ingest_svs import ingest_svs

    settings = make_settings()
    drop.put("svs.tbl", clew_file([clew_line("7ABC123")], count=5))
    drop.put("sfr.tbl", clew_file([clew_line("5FEL555")]))
    drop.put("slr.tbl", clew_file([clew_line("4PLT444")]))
    state = ingest_svs(config=str(settings.data_dir.parent / "hotlist.toml"), return_state=True)
    assert state.is_failed()
    assert "svs/svs.tbl rejected [trailer-count]" in str(state.message)
    feeds = read_state(settings.data_dir)["feeds"]
    assert feeds["sfr"]["entries"] == 1
    assert feeds["svs"]["version"] is None


def test_a_failed_ingest_that_applied_other_files_is_still_followed_by_a_purge(
    prefect_api: dict[str, Path | str], make_settings: Callable[..., Settings], drop: Drop
) -> None:
    from flows.ingest_then_purge import ingest_then_purge

    settings = make_settings()
    drop.put("svs.tbl", clew_file([clew_line("7ABC123")], count=5))  # rejected: trailer
    drop.put("sfr.tbl", clew_file([clew_line("5FEL555")]))
    drop.put("slr.tbl", clew_file([clew_line("4PLT444")]))
    ingested, purged = ingest_then_purge("svs", str(settings.data_dir.parent / "hotlist.toml"))
    assert ingested.is_failed()
    assert purged is not None and purged.result()["verified"] is True
    assert read_state(settings.data_dir)["feeds"]["sfr"]["entries"] == 1


def test_a_missing_file_fails_at_once_without_retries(
    prefect_api: dict[str, Path | str], make_settings: Callable[..., Settings]
) -> None:
    from flows.ingest_ncic import ingest_ncic

    settings = make_settings()
    state = ingest_ncic(config=str(settings.data_dir.parent / "hotlist.toml"), return_state=True)
    assert state.is_failed()
    assert "[not-found]" in str(state.message)


@pytest.fixture(scope="module")
def deployed(
    prefect_api: dict[str, Path | str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., str]:
    """`prefect deploy --all` of prefect.yaml against the real API; returns a CLI runner."""
    env = {
        **os.environ,
        "PREFECT_API_URL": str(prefect_api["api"]),
        "PREFECT_HOME": str(tmp_path_factory.mktemp("deploy-home")),
        "HOTLIST_HOME": str(Path.cwd()),
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run("work-pool", "create", "hotlist", "--type", "process", "--overwrite")
    run("work-pool", "create", "hotlist-watch", "--type", "process", "--overwrite")
    run("--no-prompt", "deploy", "--all")
    return run


def test_prefect_deploy_all_accepts_the_project_deployments(deployed: Callable[..., str]) -> None:
    svs = deployed("deployment", "inspect", "ingest-svs/clew-svs")
    ncic = deployed("deployment", "inspect", "ingest-ncic/ncic-extract")
    assert "'cron': '5 */2 * * *'" in svs
    assert "'cron': '45 * * * *'" in deployed("deployment", "inspect", "purge/purge-sweep")
    assert "'cron': '30 6,18 * * *'" in ncic and "'cron': '30 9,21 * * *'" in ncic
    for inspected in (svs, ncic):
        assert "'collision_strategy': 'ENQUEUE'" in inspected
        assert "'limit': 1" in inspected


def _triggered_purge_runs() -> list[str]:
    """Ids of purge-sweep flow runs that no schedule created (a trigger did)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("purge/purge-sweep")
        runs = client.read_flow_runs(limit=200)
    return [str(r.id) for r in runs if r.deployment_id == deployment.id and not r.auto_scheduled]


def test_an_applied_file_starts_the_deployed_purge_as_its_own_flow_run(
    deployed: Callable[..., str], make_settings: Callable[..., Settings], drop: Drop
) -> None:
    """The ingest flow run does not purge: its hotlist.ingest.applied event makes the
    purge-sweep deployment's trigger schedule a purge flow run for the writers' pool."""
    import time

    from flows.ingest_ncic import ingest_ncic

    settings = make_settings()
    config = str(settings.data_dir.parent / "hotlist.toml")
    before = set(_triggered_purge_runs())
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7TRG001")]))
    assert ingest_ncic(config=config)["files_applied"] == 1
    deadline = time.monotonic() + 60
    while not (new := set(_triggered_purge_runs()) - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(new) == 1, "no purge flow run was triggered by the applied file"
    assert read_state(settings.data_dir)["feeds"]["ncic"]["entries"] == 1


def test_a_tracked_cli_ingest_runs_the_ingest_and_then_the_purge_as_two_flow_runs(
    prefect_api: dict[str, Path | str], make_settings: Callable[..., Settings], drop: Drop
) -> None:
    from typer.testing import CliRunner

    from hotlist.cli import app

    settings = make_settings()
    config = str(settings.data_dir.parent / "hotlist.toml")
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7CLI001")]))
    first = CliRunner().invoke(app, ["ingest", "ncic", "--prefect", "-c", config])
    assert first.exit_code == 0, first.output
    assert "ingest-ncic flow run completed" in first.output
    assert "purge flow run completed" in first.output and "'verified': True" in first.output
    again = CliRunner().invoke(app, ["ingest", "ncic", "--prefect", "-c", config])
    assert again.exit_code == 0, again.output
    assert "purge flow run" not in again.output  # nothing applied: nothing to purge


def test_the_ncic_flow_runs_end_to_end_over_a_real_sshd(
    prefect_api: dict[str, Path | str], tmp_path: Path
) -> None:
    """fetch over SFTP (pinned host key, key auth) -> apply -> purge -> verified."""
    from flows.ingest_ncic import ingest_ncic
    from flows.ingest_then_purge import ingest_then_purge
    from hotlist.config import load_settings
    from hotlist.lookup import find_hits
    from tests.sshd_server import start_sshd

    server = start_sshd()
    try:
        outbound = server.root / "outbound"
        outbound.mkdir(mode=0o755)
        extract = outbound / "VEHEXTRT.txt"
        extract.write_text(ncic_file([ncic_line(f"V{i:09d}", f"7SSH{i:03d}") for i in range(30)]))
        extract.chmod(0o644)
        config = tmp_path / "hotlist.toml"
        config.write_text(
            f'data_dir = "data"\n[sources.ncic]\nurl = "{server.url_for("outbound")}"\n'
            f'private_key = "{server.client_key}"\nknown_hosts = "{server.known_hosts}"\n'
        )
        ingested, purged = ingest_then_purge("ncic", str(config))
        assert ingested.result()["files_applied"] == 1
        assert purged is not None and purged.result()["verified"] is True
        settings = load_settings(config)
        assert [h.record_id for h in find_hits(settings.data_dir, "7SSH007")] == ["V000000007"]
        again = ingest_ncic(config=str(config))  # nothing new upstream: nothing downloaded
        assert again["files_applied"] == 0
        assert again["files_unchanged"] == 0
    finally:
        server.close()


def test_an_encrypted_client_key_opens_with_a_passphrase_from_a_prefect_secret_block(
    prefect_api: dict[str, Path | str], tmp_path: Path
) -> None:
    import subprocess

    from prefect.blocks.system import Secret

    from flows.ingest_ncic import ingest_ncic
    from tests.sshd_server import start_sshd

    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "correct horse", "-f", str(key), "-C", "t"],
        check=True,
    )
    Secret(value="correct horse").save("hotlist-sftp-passphrase", overwrite=True)
    server = start_sshd()
    try:
        server.authorize(key.with_suffix(".pub").read_text().strip())
        outbound = server.root / "outbound"
        outbound.mkdir(mode=0o755)
        (outbound / "VEHEXTRT.txt").write_text(ncic_file([ncic_line("V000000001", "7SEC001")]))
        (outbound / "VEHEXTRT.txt").chmod(0o644)
        config = tmp_path / "hotlist.toml"
        config.write_text(
            f'data_dir = "data"\n[sources.ncic]\nurl = "{server.url_for("outbound")}"\n'
            f'private_key = "{key}"\nknown_hosts = "{server.known_hosts}"\n'
            'passphrase_secret = "hotlist-sftp-passphrase"\n'
        )
        assert ingest_ncic(config=str(config))["files_applied"] == 1
    finally:
        server.close()


def _events(api: str, name: str) -> list[dict[str, object]]:
    import httpx

    response = httpx.post(
        f"{api}/events/filter", json={"filter": {"event": {"name": [name]}}, "limit": 50}
    )
    response.raise_for_status()
    events: list[dict[str, object]] = response.json()["events"]
    return events


def test_an_ingest_that_leaves_a_feed_stale_emits_a_stale_event_in_prefect(
    prefect_api: dict[str, Path | str], make_settings: Callable[..., Settings], drop: Drop
) -> None:
    """The extract is dated 2026-11-22: applied now, it is still days old. The run
    completes (its file applied) and Prefect gets hotlist.feed.stale with the reason."""
    import time

    from flows.ingest_ncic import ingest_ncic

    settings = make_settings()
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7STL001")], stamp="202611220800"))
    api = str(prefect_api["api"])
    state = ingest_ncic(config=str(settings.data_dir.parent / "hotlist.toml"), return_state=True)
    assert state.result()["files_applied"] == 1
    run = f"prefect.flow-run.{state.state_details.flow_run_id}"

    def of_this_run() -> list[dict[str, object]]:
        return [
            e
            for e in _events(api, "hotlist.feed.stale")
            if any(r.get("prefect.resource.id") == run for r in e["related"])  # type: ignore[attr-defined]
        ]

    deadline = time.monotonic() + 30
    while not (new := of_this_run()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(new) == 1, "no hotlist.feed.stale event from this flow run"
    [event] = new
    assert event["resource"] == {"prefect.resource.id": "hotlist.feed.ncic"}
    payload = event["payload"]
    assert isinstance(payload, dict)
    assert payload["freshness_hours"] == 12.0
    assert payload["reasons"][0].startswith("extract ")
    assert "7STL001" not in str(event)


def test_an_ingest_flow_run_after_a_kill_past_the_commit_finishes_the_publish_and_purge(
    prefect_api: dict[str, Path | str], make_settings: Callable[..., Settings], drop: Drop
) -> None:
    """Nothing new upstream, but a killed run left a committed version unpublished: the
    rerun's purge flow run publishes it, instead of waiting for the hourly sweep."""
    from flows.ingest_then_purge import ingest_then_purge
    from tests import crash

    settings = make_settings()
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line(f"V{i:09d}", p) for i, p in enumerate(MARKERS)]))
    crash.killed_at(settings, "after-commit", "ingest_source(s, 'ncic')")
    assert read_current(settings.published_dir) is None  # committed, never published
    ingested, purged = ingest_then_purge("ncic", str(settings.data_dir.parent / "hotlist.toml"))
    assert ingested.result()["files_applied"] == 0  # the same file: nothing new upstream
    assert ingested.result()["pending"] is True
    assert purged is not None and purged.result()["verified"] is True
    current = read_current(settings.published_dir)
    assert current is not None
