"""A key revoked while its long poll waits (``GET /v1/hotlist?since=N&wait=S``, what
``hotlist pull --follow`` sends): the version published after the revocation is not
served to it; the poll is refused (real ``hotlist serve`` process, real PostgreSQL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from hotlist.ingest import ingest_source
from hotlist.purge import purge
from tests.builders import Drop, ncic_file
from tests.serving import server_process
from tests.test_pg_consumers import LINES, _cli, _publish, _write_config


def test_a_key_revoked_during_its_long_poll_is_not_served_the_next_version(
    pg_url: str, tmp_path: Path, drop: Drop
) -> None:
    config = _write_config(tmp_path, "data", pg_url, drop)
    _cli("db", "upgrade", "-c", str(config))
    settings = _publish(config, drop)
    with server_process(config, tmp_path) as server:
        key = _cli("consumers", "add", "car-7", "--agency-ori", "CA0190000", "--agency-name",
                   "PD", "--agency-kind", "ca-local", "-c", str(config)).strip()  # fmt: skip
        answers: list[httpx.Response] = []
        headers = {"Authorization": f"Bearer {key}", "X-User": "o", "X-Purpose": "patrol"}

        def follow() -> None:
            answers.append(
                httpx.get(
                    f"http://127.0.0.1:{server.port}/v1/hotlist",
                    params={"since": 1, "wait": 30},
                    headers=headers,
                    timeout=60,
                )
            )

        poll = threading.Thread(target=follow)
        poll.start()
        time.sleep(1.0)  # the poll was admitted and waits
        _cli("consumers", "revoke", "car-7", "-c", str(config))
        time.sleep(1.5)  # past the key cache's freshness: every replica knows
        drop.put("VEHEXTRT.txt", ncic_file(LINES[:19], stamp="202611220800"))
        ingest_source(settings, "ncic")
        purge(settings, None)  # version 2, announced to the server
        poll.join(timeout=40)
    [answer] = answers
    assert answer.status_code == 401, (answer.status_code, answer.headers)
    assert "revoked" in answer.json()["detail"]
