"""Long-poll pulls (``GET /v1/hotlist?since=V&wait=S``) and the following client
(``hotlist pull --follow``), over a real uvicorn server."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import polars as pl
import pytest

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.serve import consumers as reg
from hotlist.serve.client import Follower, PullResult, _ack, pull
from hotlist.serve.copies import ParquetCopy
from hotlist.testing.sshd import free_port
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import local_copy, running_api, server_process

BASE = [ncic_line(f"V{i:09d}", f"7FOL{i:03d}") for i in range(40)]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings("guards = {max_removal_share = 0.5}")


def publish(settings: Settings, drop: Drop, lines: list[str], n: int) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(lines, stamp=f"2026112{n}0800"))
    ingest_source(settings, "ncic")
    purge(settings, None)


@pytest.fixture
def key(settings: Settings, drop: Drop) -> str:
    publish(settings, drop, BASE, 1)
    return reg.add(settings.data_dir, "car-12", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-User": "car12", "X-Purpose": "patrol"}


def get(url: str, key: str, **params: str | int) -> httpx.Response:
    return httpx.get(
        f"{url}/v1/hotlist",
        params={"format": "parquet", **params},
        headers=headers(key),
        timeout=90,
    )


def plates(copy: Path) -> set[str]:
    return set(local_copy(copy)["plate"])


# -- long-poll -------------------------------------------------------------------------------


def test_a_waiting_pull_is_answered_with_the_delta_once_a_newer_version_is_published(
    settings: Settings, drop: Drop, key: str
) -> None:
    with running_api(settings) as url:
        answers: list[httpx.Response] = []
        waiter = threading.Thread(target=lambda: answers.append(get(url, key, since=1, wait=60)))
        waiter.start()
        time.sleep(1)
        assert waiter.is_alive()  # nothing newer yet: it waits
        publish(settings, drop, BASE[1:], 2)
        waiter.join(timeout=90)
    [answer] = answers
    assert answer.status_code == 200
    assert (answer.headers["X-Hotlist-Version"], answer.headers["X-Hotlist-Full"]) == ("2", "false")
    delta = pl.read_parquet(answer.content)
    assert delta.filter(pl.col("op") == "remove").height == 1
    last = list(audit.records(settings.data_dir))[-1]
    assert (last["data_element"], last["outcome"]) == ("delta version 1 to 2", "granted")


def test_nothing_newer_within_the_wait_answers_304_and_is_logged(
    settings: Settings, key: str
) -> None:
    with running_api(settings) as url:
        answer = get(url, key, since=1, wait=1)
    assert answer.status_code == 304 and answer.headers["X-Hotlist-Version"] == "1"
    last = list(audit.records(settings.data_dir))[-1]
    assert last["data_element"] == "wait for a version after 1"
    assert last["outcome"] == "granted: nothing newer"
    assert (last["user"], last["organization"]) == ("car12", "CA0190000")


@pytest.mark.parametrize("wait", ["61", "-1", "nan", "1e9", "5;6"])
def test_a_wait_outside_0_to_60_seconds_is_refused_and_logged(
    settings: Settings, key: str, wait: str
) -> None:
    with running_api(settings) as url:
        answer = get(url, key, since=1, wait=wait)
    assert answer.status_code == 422 and "wait" in answer.json()["detail"]
    assert list(audit.records(settings.data_dir))[-1]["outcome"].startswith("failed: 422")


def test_a_client_ahead_of_the_server_is_not_kept_waiting(settings: Settings, key: str) -> None:
    """A copy newer than anything published (a store rebuilt from scratch) gets the full
    current version at once, as without wait."""
    with running_api(settings) as url:
        answer = get(url, key, since=9, wait=60)
    assert answer.status_code == 200 and answer.headers["X-Hotlist-Full"] == "true"


def test_a_pull_that_sees_a_new_version_first_wakes_those_already_waiting(
    settings: Settings, drop: Drop, key: str
) -> None:
    """Whoever sees the new version first (here a pull arriving, long before the periodic
    check's next tick) wakes every waiter."""
    from hotlist.serve.versions import HotlistCache
    from hotlist.serve.waiters import VersionWaiters

    async def main() -> tuple[int | None, int | None]:
        waiters = VersionWaiters(HotlistCache(settings.published_dir), every_s=3600)
        parked = asyncio.create_task(waiters.other_than(1, 30))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(publish, settings, drop, BASE[1:], 2)
        arriving = await waiters.other_than(1, 30)
        return arriving, await asyncio.wait_for(parked, 10)

    assert asyncio.run(main()) == (2, 2)


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_a_thousand_waiting_pulls_hold_no_thread_each(
    settings: Settings, drop: Drop, key: str, tmp_path: Path
) -> None:
    """1,000 consumers long-poll a real `hotlist serve` process at once: its thread count
    stays that of an idle server's thread pool, and one publication answers them all."""
    waiters = 1000
    config = settings.data_dir.parent / "hotlist.toml"
    with server_process(config, tmp_path) as server:
        url = f"http://127.0.0.1:{server.port}"
        sent = 0
        threads_while_waiting: list[int] = []

        async def one(client: httpx.AsyncClient) -> httpx.Response:
            nonlocal sent
            sent += 1
            return await client.get(
                "/v1/hotlist",
                params={"format": "parquet", "since": 1, "wait": 60},
                headers=headers(key),
            )

        async def publish_when_all_wait() -> None:
            while sent < waiters:
                await asyncio.sleep(0.2)
            await asyncio.sleep(5)  # let the server accept and park them
            threads_while_waiting.append(_threads(server.pid))
            await asyncio.to_thread(publish, settings, drop, BASE[2:], 2)

        async def main() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=waiters, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
                publisher = asyncio.create_task(publish_when_all_wait())
                answers = await asyncio.gather(*(one(client) for _ in range(waiters)))
                await publisher
                return list(answers)

        answers = asyncio.run(main())
    assert [a.status_code for a in answers] == [200] * waiters
    assert {a.headers["X-Hotlist-Version"] for a in answers} == {"2"}
    # anyio's default thread pool is 40; a thread per waiter would be over a thousand
    assert threads_while_waiting[0] < 64, threads_while_waiting


# -- the following client --------------------------------------------------------------------


def _following(
    url: str, key: str, out: Path
) -> tuple[Follower, threading.Thread, list[PullResult]]:
    seen: list[PullResult] = []
    follower = Follower(
        url, key, "car12", "patrol", out, wait_s=30, on_pull=seen.append, copy_format="parquet"
    )
    thread = threading.Thread(target=follower.run)
    thread.start()
    return follower, thread, seen


def _until(done: Callable[[], bool], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.1)


def test_following_applies_each_version_scrubs_the_copy_it_replaced_and_acks(
    settings: Settings, drop: Drop, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "patrol copy"
    with running_api(settings) as url:
        follower, thread, seen = _following(url, key, out)
        try:
            _until(lambda: len(seen) == 1)
            assert "7FOL000" in plates(out)
            old = os.open(out / "hotlist.parquet", os.O_RDONLY)  # the copy about to be replaced
            try:
                publish(settings, drop, BASE[1:], 2)
                _until(lambda: len(seen) == 2)
                replaced = os.pread(old, 1 << 20, 0)
            finally:
                os.close(old)
        finally:
            follower.stop()
            thread.join(timeout=60)
    assert not thread.is_alive()
    assert "7FOL000" not in plates(out)
    assert replaced and replaced == bytes(len(replaced))  # overwritten with zeros
    assert sorted(p.name for p in out.iterdir()) == ["hotlist.parquet", "state.json"]
    [consumer] = reg.all_consumers(settings.data_dir)
    assert consumer.acked_version == 2


def test_an_ack_whose_connection_the_server_closed_is_sent_again_at_once(tmp_path: Path) -> None:
    """A kept-alive connection the server closes as the ack goes out (its idle timeout
    ran out during a long apply) fails the request with no answer: the ack is sent again
    on a new connection, not counted as the server away."""
    asked: list[bytes] = []

    def answer(conn: socket.socket) -> None:
        with conn:
            asked.append(conn.recv(65536))
            if len(asked) > 1:  # the first is dropped unanswered
                body = b'{"consumer": "car-12", "acked_version": 3}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in range(2):
                answer(listener.accept()[0])

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        copy = ParquetCopy(tmp_path / "copy")
        copy.save(3, acked=False)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            _ack(http, {b"X-User": b"car12"}, copy)
        server.join(timeout=10)
    assert copy.acked and len(asked) == 2
    assert all(a.startswith(b"POST /v1/ack ") for a in asked)


def test_following_reconnects_with_backoff_when_the_server_comes_back(
    settings: Settings, key: str, tmp_path: Path
) -> None:
    port = free_port()
    out = tmp_path / "copy"
    follower, thread, seen = _following(f"http://127.0.0.1:{port}", key, out)
    try:
        _until(lambda: follower.failures >= 2)
        with running_api(settings, port=port):
            _until(lambda: len(seen) == 1)
    finally:
        follower.stop()
        thread.join(timeout=60)
    assert seen[0].version == 1 and "7FOL000" in plates(out)


def test_a_copy_killed_between_link_and_replace_keeps_its_content(
    settings: Settings, key: str, tmp_path: Path
) -> None:
    """The old copy is linked aside before the new one takes its place; when a run died in
    between, the link is the copy itself and must not be scrubbed."""
    out = tmp_path / "copy"
    with running_api(settings) as url:
        pull(url, key, "car12", "patrol", out, copy_format="parquet")
    os.link(out / "hotlist.parquet", out / "hotlist.parquet.replaced")
    ParquetCopy(out)
    assert "7FOL000" in plates(out)
    assert not (out / "hotlist.parquet.replaced").exists()


def test_a_stray_replaced_copy_or_half_written_copy_is_scrubbed(
    settings: Settings, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    with running_api(settings) as url:
        pull(url, key, "car12", "patrol", out, copy_format="parquet")
    for name in ("hotlist.parquet.replaced", "hotlist.parquet.tmp"):
        (out / name).write_bytes((out / "hotlist.parquet").read_bytes())
    held = [
        os.open(out / n, os.O_RDONLY) for n in ("hotlist.parquet.replaced", "hotlist.parquet.tmp")
    ]
    try:
        ParquetCopy(out)
        for fd in held:
            data = os.pread(fd, 1 << 20, 0)
            assert data == bytes(len(data))
    finally:
        for fd in held:
            os.close(fd)
    assert sorted(p.name for p in out.iterdir()) == ["hotlist.parquet", "state.json"]


# -- copies that fall behind -----------------------------------------------------------------


def test_status_and_the_deletion_report_tell_a_copy_that_fails_to_apply_from_one_that_stopped(
    settings: Settings, drop: Drop, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three copies at version 1, then version 2: one follows; one pulls again but never
    acknowledges (its apply fails); one never asks again (stopped polling)."""
    from typer.testing import CliRunner

    from hotlist.cli import app
    from hotlist.config import load_settings
    from hotlist.reports import deletion_report
    from hotlist.serve import seen

    monkeypatch.setattr(seen, "EVERY_S", 0.0)  # stamp every pull
    monkeypatch.setattr(seen, "APPLY_GRACE_S", 1.0)
    config = settings.data_dir.parent / "hotlist.toml"
    config.write_text(config.read_text() + "\n[purge]\nconsumer_sla_hours = 0.001\n")
    settings = load_settings(config, environ={})
    keys = {"car-12": key}
    for name in ("car-20", "car-30"):
        keys[name] = reg.add(
            settings.data_dir, name, "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL
        )
    with running_api(settings) as url:
        for name, k in keys.items():
            pull(url, k, "car12", "patrol", Path(settings.data_dir.parent / name))
        publish(settings, drop, BASE[1:], 2)
        time.sleep(4)  # past the consumer SLA (3.6 s) and the apply grace
        pull(url, keys["car-12"], "car12", "patrol", settings.data_dir.parent / "car-12")
        assert get(url, keys["car-20"], since=1).status_code == 200  # pulled, never applied
    shown = CliRunner().invoke(app, ["status", "-c", str(config)], env={"COLUMNS": "250"})
    assert shown.exit_code in (0, 3), shown.output
    rows = {
        line.split("│")[1].strip(): line for line in shown.output.splitlines() if "│ car-" in line
    }
    assert "current" in rows["car-12"] and "behind" not in rows["car-12"]
    assert "pulls but does not apply" in rows["car-20"]
    assert "stopped polling" in rows["car-30"]
    _, summary = deletion_report(settings)
    assert summary["copies_behind"].startswith("car-20: pulls but does not apply (last pull ")
    assert "car-30: stopped polling (last pull " in summary["copies_behind"]
    assert "car-12" not in summary["copies_behind"]
