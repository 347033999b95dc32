"""The patrol API with ``[serve] database_url``: every request logged into PostgreSQL, one
chain across two ``hotlist serve`` replicas answering at once (real server processes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.serve import consumers as reg
from hotlist.serve.registry import registry_for
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import running_api, server_process
from tests.test_pg_audit_readers import with_database


def _published(make_settings: Callable[..., Settings], drop: Drop, pg_url: str) -> Settings:
    settings = make_settings()
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7API001")]))
    ingest_source(settings, "ncic")
    from hotlist.publish import publish
    from hotlist.store import control as ctl
    from hotlist.store.state import build_state

    con = ctl.connect(settings.data_dir)
    try:
        publish(con, settings.data_dir, settings.published_dir, build_state(con, settings.data_dir))
    finally:
        con.close()
    return with_database(settings, pg_url)


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"}


def test_every_request_is_logged_into_the_database(
    make_settings: Callable[..., Settings], drop: Drop, pg_url: str
) -> None:
    settings = _published(make_settings, drop, pg_url)
    with registry_for(settings) as registry:  # PostgreSQL, as the access log
        key = registry.add("patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    with running_api(settings) as url:
        hit = httpx.post(f"{url}/v1/lookup", json={"plate": "7API001"}, headers=_headers(key))
        assert hit.status_code == 200
        refused = httpx.post(f"{url}/v1/lookup", json={"plate": "7API001"})
        assert refused.status_code == 401
        batch = httpx.post(
            f"{url}/v1/lookup/batch",
            json={"reads": [{"plate": "7API001"}, {"plate": "ZZZ999"}]},
            headers=_headers(key),
        )
        assert batch.status_code == 200
    logged = [(r["data_element"], r["outcome"].split(":")[0]) for r in audit.records(settings)]
    assert logged == [
        ("plate 7API001", "granted"),
        ("POST /v1/lookup", "refused"),
        ("plate 7API001", "granted"),
        ("plate ZZZ999", "granted"),
    ]
    assert not audit.segment_paths(settings.data_dir)  # nothing in files
    check = audit.verify_chain(settings)
    assert check.ok, check.problems


def test_two_replicas_answering_at_once_keep_one_chain(
    make_settings: Callable[..., Settings], drop: Drop, pg_url: str, tmp_path: Path
) -> None:
    settings = _published(make_settings, drop, pg_url)
    with registry_for(settings) as registry:  # PostgreSQL, as the access log
        key = registry.add("patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    config = settings.data_dir.parent / "hotlist.toml"
    per_thread = 60
    with server_process(config, tmp_path) as one, server_process(config, tmp_path) as two:
        errors: list[str] = []

        def run(port: int) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                for i in range(per_thread):
                    plate = "7API001" if i % 2 else "ZZZ999"
                    answer = client.post("/v1/lookup", json={"plate": plate}, headers=_headers(key))
                    if answer.status_code != 200:
                        errors.append(f"{answer.status_code}")

        threads = [threading.Thread(target=run, args=(s.port,)) for s in (one, two, one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    records = list(audit.records(settings))
    assert len(records) == 4 * per_thread
    assert [r["seq"] for r in records] == list(range(1, 4 * per_thread + 1))
    check = audit.verify_chain(settings)
    assert check.ok, check.problems


def test_no_answer_without_its_record_while_the_database_is_away(
    make_settings: Callable[..., Settings], drop: Drop, pg_url: str
) -> None:
    """PostgreSQL unreachable: once the server knows it (its next statement fails),
    requests are refused (503, naming why), never answered unlogged; a request answered
    in the moment before is in the journal and reaches the log when the database is
    back. In the end every answered request has its record, once, in one chain (a
    request refused while the key registry is away may have its record too)."""
    import psycopg

    settings = _published(make_settings, drop, pg_url)
    with registry_for(settings) as registry:  # PostgreSQL, as the access log
        key = registry.add("patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    database = pg_url.rsplit("/", 1)[1]
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    answered = 0
    with running_api(settings) as url, psycopg.connect(admin, autocommit=True) as con:

        def ask() -> httpx.Response:
            nonlocal answered
            answer = httpx.post(
                f"{url}/v1/lookup", json={"plate": "7API001"}, headers=_headers(key)
            )
            answered += answer.status_code == 200
            return answer

        assert ask().status_code == 200
        con.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'.encode())
        con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
        try:
            deadline = time.monotonic() + 5
            while (away := ask()).status_code == 200:
                assert time.monotonic() < deadline, "answered on while the database was away"
                time.sleep(0.05)
            assert away.status_code == 503
            assert away.headers["retry-after"] == "1"
            assert "7API001" not in away.text
            assert "PostgreSQL at" in away.json()["detail"]
        finally:
            con.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'.encode())
        deadline = time.monotonic() + 10  # the writer tries again once a second
        while (answer := ask()).status_code != 200:
            assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
            time.sleep(0.1)
    # A refusal is logged too when the log can take it (the key registry away while the
    # journal takes the record: "failed: 503"); every answer is granted and logged once.
    outcomes = [r["outcome"] for r in audit.records(settings)]
    assert sum(o.startswith("granted") for o in outcomes) == answered
    assert all(o.startswith("granted") or o == "failed: 503" for o in outcomes), outcomes
    check = audit.verify_chain(settings)
    assert check.ok, check.problems
