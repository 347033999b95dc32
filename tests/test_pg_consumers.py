"""The consumer registry in PostgreSQL ([serve] database_url), on a real cluster: the
registry's operations, acks that never move backwards under concurrent replicas, the
command line, and two real ``hotlist serve`` processes sharing one database, where a
revocation is refused by both within a second and a lost database fails closed."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings, load_settings
from hotlist.ingest import ingest_source
from hotlist.pg import SchemaNotCurrent, connect, where
from hotlist.pg.migrate import upgrade
from hotlist.purge import purge
from hotlist.reports import deletion_report
from hotlist.serve.consumers import AgencyKind, ConsumerError, KeysUnavailable
from hotlist.serve.registry import registry_for
from hotlist.serve.registry_pg import PgRegistry
from hotlist.serve.seen import PullStamps
from tests.builders import Drop, ncic_file, ncic_line
from tests.pg_server import Cluster, start_cluster
from tests.serving import ServerProcess, server_process

runner = CliRunner()
LINES = [ncic_line(f"V{i:09d}", f"7PGS{i:03d}") for i in range(20)]
CA = AgencyKind.CA_LOCAL


@pytest.fixture
def registry(pg_url: str) -> Iterator[PgRegistry]:
    upgrade(pg_url)
    with PgRegistry(pg_url) as found:
        yield found


def test_a_database_without_the_schema_is_refused_naming_the_remedy(pg_url: str) -> None:
    with pytest.raises(SchemaNotCurrent, match="hotlist db upgrade"):
        PgRegistry(pg_url)


def test_add_rotate_revoke_and_list(registry: PgRegistry) -> None:
    key = registry.add("car-1", "CA0190000", "Demo PD", CA)
    fed = registry.add("fed", "DC0000000", "A federal agency", AgencyKind.FEDERAL)
    found = registry.by_key(key)
    assert found is not None and found.name == "car-1" and found.revoked_at is None
    assert registry.by_key(fed) is not None
    with connect(registry.url) as con:  # only the hash is stored
        hashes = [str(r[0]) for r in con.execute("SELECT key_hash FROM consumers")]
    assert key not in hashes and len(hashes) == 2
    with pytest.raises(ConsumerError, match="exists already"):
        registry.add("car-1", "CA0190000", "Demo PD", CA)
    with pytest.raises(ConsumerError, match="9 characters starting CA"):
        registry.add("car-2", "NV0000000", "Demo PD", CA)
    rotated = registry.rotate("car-1")
    assert registry.by_key(key) is None
    assert registry.by_key(rotated) is not None
    registry.revoke("car-1")
    with pytest.raises(ConsumerError, match="no active consumer"):
        registry.revoke("car-1")
    with pytest.raises(ConsumerError, match="no active consumer"):
        registry.rotate("car-1")
    listed = {c.name: c for c in registry.all_consumers()}
    assert sorted(listed) == ["car-1", "fed"]
    assert listed["car-1"].revoked_at is not None
    assert listed["fed"].agency_kind is AgencyKind.FEDERAL


def test_concurrent_acks_from_two_replicas_never_move_backwards(pg_url: str) -> None:
    upgrade(pg_url)
    with PgRegistry(pg_url) as one, PgRegistry(pg_url) as two:
        key = one.add("car-1", "CA0190000", "Demo PD", CA)
        versions = sorted(range(1, 201), key=lambda v: (v * 37) % 201)  # out of order
        start = threading.Barrier(8)
        seen_backwards: list[tuple[int, int]] = []

        def acker(replica: PgRegistry, mine: list[int]) -> None:
            start.wait()
            for version in mine:
                assert replica.ack(key, version)
                [after] = [c.acked_version for c in replica.all_consumers()]
                assert after is not None
                if after < version:  # an ack that took effect must stay at least that high
                    seen_backwards.append((version, after))

        threads = [
            threading.Thread(target=acker, args=(one if i % 2 else two, versions[i::8]))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        [consumer] = one.all_consumers()
        history = one.ack_history()["car-1"]
    assert seen_backwards == []
    assert consumer.acked_version == 200
    assert consumer.acked_at == history[-1][1]
    got = [version for version, _ in history]
    assert got == sorted(set(got)) and got[-1] == 200  # each row an advance, none repeated
    times = [at for _, at in history]
    assert times == sorted(times)  # an advance recorded later is never an older version


def test_acks_stamps_and_last_pulls(registry: PgRegistry) -> None:
    key = registry.add("car-1", "CA0190000", "Demo PD", CA)
    registry.add("car-2", "CA0190000", "Demo PD", CA)
    assert registry.ack(key, 3)
    assert registry.ack(key, 2)  # backwards: ignored, not recorded
    assert registry.ack(key, 5)
    assert not registry.ack("hl_nobody", 9)  # an unknown key: nothing recorded
    history = registry.ack_history()
    assert {name: [v for v, _ in acks] for name, acks in history.items()} == {"car-1": [3, 5]}
    [consumer, _] = registry.all_consumers()
    assert (consumer.acked_version, consumer.acked_at) == (5, history["car-1"][1][1])
    registry.stamp("car-1", "2026-12-02T10:00:00+00:00")
    registry.stamp("car-1", "2026-12-02T09:00:00+00:00")  # older: the stamp keeps the latest
    assert {k: v.isoformat() for k, v in registry.last_pulls().items()} == {
        "car-1": "2026-12-02T10:00:00+00:00"
    }
    stamps = PullStamps(registry, every_s=60)
    stamps.stamp("car-2")
    first = registry.last_pulls()["car-2"]
    assert not stamps.due("car-2")
    stamps.stamp("car-2")  # within every_s of the last: not written again
    assert registry.last_pulls()["car-2"] == first


def test_an_ack_counts_only_under_the_consumers_active_key(registry: PgRegistry) -> None:
    """A replaced or revoked key cannot vouch for a copy, whichever replica it reaches."""
    old = registry.add("car-1", "CA0190000", "Demo PD", CA)
    assert registry.ack(old, 1)
    new = registry.rotate("car-1")
    assert not registry.ack(old, 2)
    assert registry.ack(new, 2)
    assert registry.ack(new, 1)  # backwards under the active key: no advance, no refusal
    registry.revoke("car-1")
    assert not registry.ack(new, 3)
    assert {n: [v for v, _ in a] for n, a in registry.ack_history().items()} == {"car-1": [1, 2]}


def test_the_key_cache_follows_changes_and_refuses_once_closed(registry: PgRegistry) -> None:
    cache = registry.key_cache()
    try:
        key = registry.add("car-1", "CA0190000", "Demo PD", CA)
        took = _until(lambda: cache.get(key) is not None)
        assert took < 1.0
        registry.revoke("car-1")
        took = _until(
            lambda: (found := cache.get(key)) is not None and found.revoked_at is not None
        )
        assert took < 1.0
        time.sleep(1.0)  # idle: the listener's round trips keep the map usable
        assert cache.get("hl_unknown") is None
    finally:
        cache.close()
    with pytest.raises(KeysUnavailable, match="cannot be confirmed current"):
        cache.get(key)


def _until(condition: object, limit: float = 5.0) -> float:
    """Seconds until ``condition()`` holds (polled every 5 ms); fails after ``limit``."""
    assert callable(condition)
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < limit, "the condition never held"
        time.sleep(0.005)
    return time.monotonic() - start


# -- the command line and real servers ------------------------------------------------


def _write_config(root: Path, data_dir: str, url: str, drop: Drop) -> Path:
    config = root / f"{data_dir}.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\n'
        f'[sources.ncic]\nurl = "file://{drop.root}"\nlayout = "ncic-fixed"\n'
        f'[sources.svs]\nurl = "file://{drop.root}"\n'
        f'[serve]\ndatabase_url = "{url}"\n'
    )
    return config


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_command_line_manages_consumers_in_postgresql(
    pg_url: str, tmp_path: Path, drop: Drop
) -> None:
    config = str(_write_config(tmp_path, "data", pg_url, drop))
    refused = runner.invoke(app, ["consumers", "list", "-c", config])
    assert refused.exit_code != 0
    assert "hotlist db upgrade" in refused.stderr
    _cli("db", "upgrade", "-c", config)
    key_file = tmp_path / "car.key"
    _cli("consumers", "add", "car-7", "--agency-ori", "CA0190000", "--agency-name", "PD",
         "--agency-kind", "ca-local", "--key-file", str(key_file), "-c", config)  # fmt: skip
    key = key_file.read_text().strip()
    with PgRegistry(pg_url) as registry:
        assert registry.by_key(key) is not None
        rotated = _cli("consumers", "rotate", "car-7", "-c", config).strip()
        assert registry.by_key(key) is None and registry.by_key(rotated) is not None
        _cli("consumers", "revoke", "car-7", "-c", config)
        [consumer] = registry.all_consumers()
        assert consumer.revoked_at is not None
    listing = _cli("consumers", "list", "-c", config)
    assert "car-7" in listing and "revoked" in listing
    twice = runner.invoke(app, ["consumers", "revoke", "car-7", "-c", config])
    assert twice.exit_code != 0 and "no active consumer" in twice.stderr
    # Nothing of the registry is local: data_dir was never even created.
    assert not (tmp_path / "data").exists()


#: One client for every request: a client per request costs tens of milliseconds (its TLS
#: context), which would blur the timings measured here.
CLIENT = httpx.Client(timeout=10)


def _lookup(server: ServerProcess, key: str) -> httpx.Response:
    return CLIENT.post(
        f"http://127.0.0.1:{server.port}/v1/lookup",
        json={"plate": "7PGS001"},
        headers={"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"},
        timeout=10,
    )


def _publish(config: Path, drop: Drop) -> Settings:
    settings = load_settings(config, environ={})
    drop.put("VEHEXTRT.txt", ncic_file(LINES, stamp="202611210800"))
    ingest_source(settings, "ncic")
    purge(settings, None)
    return settings


def _second_data_dir(tmp_path: Path, first: Settings, url: str, drop: Drop) -> Path:
    """A replica with a data_dir of its own that serves the first one's published versions."""
    second = tmp_path / "replica-b"
    second.mkdir(mode=0o700)
    (second / "published").symlink_to(first.data_dir / "published")
    # Every host that writes the shared access log holds a copy of its key (docs/deploy.md).
    (second / "secrets").mkdir(mode=0o700)
    key = second / "secrets" / "audit-hmac.key"
    key.write_bytes((first.data_dir / "secrets" / "audit-hmac.key").read_bytes())
    key.chmod(0o600)
    return _write_config(tmp_path, "replica-b", url, drop)


def test_two_replicas_serve_a_new_consumer_and_refuse_a_revoked_one_within_a_second(
    pg_url: str, tmp_path: Path, drop: Drop
) -> None:
    config_a = _write_config(tmp_path, "replica-a", pg_url, drop)
    _cli("db", "upgrade", "-c", str(config_a))
    first = _publish(config_a, drop)
    config_b = _second_data_dir(tmp_path, first, pg_url, drop)
    with server_process(config_a, tmp_path) as a, server_process(config_b, tmp_path) as b:
        key = _cli("consumers", "add", "car-7", "--agency-ori", "CA0190000", "--agency-name",
                   "PD", "--agency-kind", "ca-local", "-c", str(config_b)).strip()  # fmt: skip
        assert _until(lambda: _lookup(a, key).status_code == 200) < 1.0
        assert _lookup(b, key).status_code == 200
        assert _lookup(b, key).json()["hits"][0]["record_id"] == "V000000001"
        # An ack and a pull stamp through one replica land in the shared registry.
        ack = httpx.post(
            f"http://127.0.0.1:{a.port}/v1/ack",
            json={"version": 1},
            headers={"Authorization": f"Bearer {key}", "X-User": "o", "X-Purpose": "patrol"},
            timeout=10,
        )
        assert ack.status_code == 200, ack.text
        pulled = httpx.get(
            f"http://127.0.0.1:{b.port}/v1/hotlist",
            headers={"Authorization": f"Bearer {key}", "X-User": "o", "X-Purpose": "patrol"},
            timeout=10,
        )
        assert pulled.status_code == 200
        with PgRegistry(pg_url) as registry:
            assert [c.acked_version for c in registry.all_consumers()] == [1]
            assert list(registry.last_pulls()) == ["car-7"]
        # The deletion report reads the same acks and stamps: the copy is current.
        assert deletion_report(first)[1]["copies_behind"] == "none"
        with PgRegistry(pg_url) as registry:
            registry.add("car-8", "CA0190000", "PD", CA)
        assert deletion_report(first)[1]["copies_behind"] == "car-8: never pulled"

        start = time.monotonic()
        _cli("consumers", "revoke", "car-7", "-c", str(config_a))
        command = time.monotonic() - start
        refused: dict[str, float] = {}
        while len(refused) < 2:
            for name, server in (("a", a), ("b", b)):
                if name not in refused:
                    answer = _lookup(server, key)
                    if answer.status_code == 401:
                        assert answer.json()["detail"] == "this API key was revoked"
                        refused[name] = time.monotonic() - start
            assert time.monotonic() - start < 5, f"still served after 5 s: {refused}"
        print(
            f"revocation: the command took {command:.3f} s; refused by replica a"
            f" {refused['a']:.3f} s and b {refused['b']:.3f} s after the command started"
        )
        assert max(refused.values()) < 1.0
    # The consumers came from PostgreSQL: neither data_dir has a local registry.
    for data_dir in (first.data_dir, tmp_path / "replica-b"):
        assert not (data_dir / "serve" / "consumers.sqlite").exists()
        assert not (data_dir / "serve" / "last_seen.sqlite").exists()


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of this test's own: it is stopped and started while servers use it."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped by a failed test
            cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


def test_a_lost_database_fails_closed_and_serving_resumes_after_it_is_back(
    own_cluster: Cluster, tmp_path: Path, drop: Drop
) -> None:
    url = own_cluster.create_database()
    config = _write_config(tmp_path, "data", url, drop)
    upgrade(url)
    _publish(config, drop)
    with registry_for(load_settings(config, environ={})) as registry:
        key = registry.add("car-7", "CA0190000", "PD", CA)
    with server_process(config, tmp_path) as server:
        assert _until(lambda: _lookup(server, key).status_code == 200) < 1.0
        own_cluster.stop()
        stopped = time.monotonic()
        answers = []
        while time.monotonic() - stopped < 2.5:  # a full outage window, polled
            answers.append((time.monotonic() - stopped, _lookup(server, key)))
            time.sleep(0.02)
        served = [at for at, answer in answers if answer.status_code == 200]
        assert all(at < 1.0 for at in served), "a key was honoured a second after the loss"
        first_refusal = next(at for at, answer in answers if answer.status_code == 503)
        print(f"refused {first_refusal:.3f} s after PostgreSQL stopped")
        late = [answer for at, answer in answers if at >= 1.0]
        assert late and all(answer.status_code == 503 for answer in late)
        # Both the registry and the access log are in the database that went away: the
        # refusal names it (and, as it cannot be logged, says nothing is served).
        detail = late[-1].json()["detail"]
        assert f"PostgreSQL at {where(url)}" in detail
        assert "cannot be confirmed current" in detail or "access log cannot be written" in detail
        own_cluster.start()
        restarted = time.monotonic()
        took = _until(lambda: _lookup(server, key).status_code == 200, limit=15)
        print(f"served again {took:.3f} s after PostgreSQL was back")
        assert time.monotonic() - restarted < 15
        assert "lost PostgreSQL" in server.stderr.read_text()
