"""The README's Production section, followed step by step against a real Prefect server.

`prefect server start` (its scheduler on, a short loop, its own PREFECT_HOME), then
`prefect work-pool create` and `prefect deploy --all` from the project directory, then a
process worker: every scheduled deployment gets scheduled runs, the server logs no
traceback, and a deployment's flow run finds the configuration named at deploy time.
These tests exist because `prefect_test_harness` does not run the server's services: the
scheduler once failed on every loop (an SQLAlchemy release Prefect 3.8.8 does not support)
while every harness test passed. Each runs twice: with the server's database in SQLite,
and in PostgreSQL, as docs/deploy.md lays out production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotlist.store.state import read_state
from hotlist.testing.sshd import LOOPBACK, free_port
from tests.builders import ncic_file, ncic_line

pytestmark = pytest.mark.real_component

PROJECT = Path(__file__).resolve().parent.parent
#: The scheduler's loop while testing (Prefect's default is 60 s).
SCHEDULER_LOOP_S = 2
PREFECT = [sys.executable, "-m", "prefect"]


@dataclass
class Server:
    api: str
    home: Path
    log: Path
    env: dict[str, str]

    def prefect(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run the `prefect` CLI from the project directory, as the README says."""
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", *args],
            cwd=PROJECT,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.api}{path}", timeout=10) as resp:  # noqa: S310
            return json.load(resp)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(  # noqa: S310
            f"{self.api}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            return json.load(resp)

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")


def _base_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "HOTLIST_")) and k != "VIRTUAL_ENV"
    }
    env["PREFECT_HOME"] = str(home)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def _wait_healthy(server: Server, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prefect server exited with {process.returncode}:\n{server.server_log()}")
        try:
            if server.get("/health") is True:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    pytest.fail(f"prefect server did not answer within {timeout_s} s:\n{server.server_log()}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`prefect server start` on a free loopback port, scheduler on with a short loop; its
    database SQLite (one machine) or PostgreSQL (docs/deploy.md's production layout)."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    log = home / "server.log"
    env = _base_env(home)
    server_env = {
        **env,
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": str(SCHEDULER_LOOP_S),
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    if request.param == "postgresql":
        cluster = request.getfixturevalue("postgres")
        database = cluster.create_database().rsplit("/", 1)[1]
        server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
            f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{database}"
        )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", LOOPBACK, "--port", str(port), "--no-ui"],
            cwd=home,
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = f"http://{LOOPBACK}:{port}/api"
    srv = Server(api=api, home=home, log=log, env={**env, "PREFECT_API_URL": api})
    try:
        _wait_healthy(srv, process, timeout_s=240)
        yield srv
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration in a path with a space and a quote, its data_dir beside it."""
    root = tmp_path_factory.mktemp("deployed") / "the agency's hotlist"
    (root / "drop").mkdir(parents=True)
    config = root / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.ncic]\nurl = "file://{root / "drop"}"\n', encoding="utf-8"
    )
    return config


@pytest.fixture(scope="module")
def deployed(server: Server, config_file: Path) -> Server:
    """The README's Production commands: pool, concurrency limit, `prefect deploy --all`."""
    server.prefect("work-pool", "create", "hotlist", "--type", "process")
    server.prefect("work-pool", "create", "hotlist-watch", "--type", "process")
    server.prefect("work-pool", "set-concurrency-limit", "hotlist", "1")
    server.prefect(
        "deploy",
        "--all",
        env={**server.env, "HOTLIST_HOME": str(PROJECT), "HOTLIST_CONFIG": str(config_file)},
    )
    return server


def _scheduled_deployments() -> dict[str, str]:
    """Every deployment in prefect.yaml that has a schedule: {"flow/deployment": entrypoint}."""
    spec = yaml.safe_load((PROJECT / "prefect.yaml").read_text(encoding="utf-8"))
    out = {}
    for deployment in spec["deployments"]:
        if deployment.get("schedules"):
            flow_module = deployment["entrypoint"].split(":")[0]
            out[deployment["name"]] = flow_module
    return out


def _deployment_ids(server: Server) -> dict[str, str]:
    return {d["name"]: d["id"] for d in server.post("/deployments/filter", {"limit": 100})}


def _scheduled_runs(server: Server, deployment_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = server.post(
        "/flow_runs/filter",
        {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 50},
    )
    return [r for r in runs if r["auto_scheduled"]]


def _wait_for(check: Callable[[], Any], timeout_s: float, what: str, server: Server) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"{what} within {timeout_s} s; server log:\n{server.server_log()[-6000:]}")


def test_the_scheduler_creates_runs_for_every_scheduled_deployment_without_a_traceback(
    deployed: Server,
) -> None:
    expected = _scheduled_deployments()
    assert set(expected) == {"clew-svs", "ncic-extract", "purge-sweep", "watch-sources"}
    ids = _deployment_ids(deployed)
    assert set(expected) <= set(ids), f"deployed: {sorted(ids)}"

    def all_scheduled() -> bool:
        return all(_scheduled_runs(deployed, ids[name]) for name in expected)

    _wait_for(all_scheduled, 20 * SCHEDULER_LOOP_S + 60, "no scheduled runs", deployed)
    for name in expected:
        runs = _scheduled_runs(deployed, ids[name])
        assert all(r["state_type"] == "SCHEDULED" for r in runs), name
    # a few more loops: a scheduler that fails on some loop logs it
    time.sleep(3 * SCHEDULER_LOOP_S)
    log = deployed.server_log()
    assert "Traceback" not in log, log[-6000:]
    assert "InvalidRequestError" not in log


def test_a_deployed_flow_run_finds_the_configuration_named_at_deploy_time(
    deployed: Server, config_file: Path
) -> None:
    """`HOTLIST_CONFIG` at `prefect deploy` time goes into the deployments' job variables;
    a process worker that has no HOTLIST_CONFIG of its own runs the flow with it."""
    drop = config_file.parent / "drop"
    (drop / "VEHEXTRT.txt").write_text(ncic_file([ncic_line("V000000001", "7DPL001")]))
    deployment = deployed.get("/deployments/name/ingest-ncic/ncic-extract")
    assert deployment["job_variables"]["env"]["HOTLIST_CONFIG"] == str(config_file)
    run = deployed.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        {"name": f"test-{uuid.uuid4().hex[:8]}", "parameters": {}},
    )
    worker_env = {k: v for k, v in deployed.env.items() if not k.startswith("HOTLIST_")}
    worker_cwd = config_file.parent.parent  # not the project: the pull step sets it

    def finished() -> dict[str, Any] | None:
        state = deployed.get(f"/flow_runs/{run['id']}")
        return state if state["state_type"] in ("COMPLETED", "FAILED", "CRASHED") else None

    # A worker polls the pool again and again; `--run-once` polls once, and once in CI it
    # polled before the new run was offered (it stayed SCHEDULED). Poll up to three times.
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "hotlist", "--run-once"],
            cwd=worker_cwd,
            env=worker_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        if deployed.get(f"/flow_runs/{run['id']}")["state_type"] != "SCHEDULED":
            break

    flow_run = _wait_for(finished, 120, "the flow run did not finish", deployed)
    assert flow_run["state_type"] == "COMPLETED", done.stdout + done.stderr
    data_dir = config_file.parent / "data"
    assert read_state(data_dir)["feeds"]["ncic"]["entries"] == 1
    assert (data_dir.stat().st_mode & 0o777) == 0o700
