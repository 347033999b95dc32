"""Replicas: two ``hotlist serve`` processes sharing one PostgreSQL database and one
``published_dir`` (outside ``data_dir``), the purge waiting for both, and nginx in front.

Everything is real: PostgreSQL (``pg_url``), the servers (processes of their own), nginx
with the shipped example configuration and a certificate made by openssl.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from hotlist import audit
from hotlist.config import Settings, load_settings
from hotlist.ingest import ingest_source
from hotlist.pg.migrate import upgrade
from hotlist.purge import PurgeIncomplete, PurgeResult, purge
from hotlist.serve import consumers as reg
from hotlist.serve.registry import registry_for
from hotlist.serve.replicas import LIVE_S
from tests.builders import Drop, ncic_file, ncic_line
from tests.replicas import ReplicaProcess, client_tls, nginx, replica_config, replicas

pytestmark = pytest.mark.real_component

BASE = [ncic_line(f"V{i:09d}", f"7REP{i:03d}") for i in range(40)]
REMOVED = ("7REP000", "7REP001", "7REP002")  # day 2 drops the first three records


@dataclass(frozen=True)
class Site:
    settings: Settings  # the ingest and purge host's
    configs: list[Path]  # one per replica
    pg_url: str
    key: str
    drop: Drop
    tmp: Path

    def serving(self) -> dict[str, int | None]:
        """Each registered replica's serving version, from PostgreSQL."""
        with psycopg.connect(self.pg_url) as con:
            rows = con.execute("SELECT name, serving_version FROM replicas").fetchall()
        return {str(name): version for name, version in rows}

    def day_two(self) -> None:
        """Day 2's extract without the removed records, ingested (not yet published)."""
        self.drop.put("VEHEXTRT.txt", ncic_file(BASE[len(REMOVED) :], stamp="202611230800"))
        ingest_source(self.settings, "ncic")


@pytest.fixture
def site(tmp_path: Path, pg_url: str, drop: Drop) -> Site:
    upgrade(pg_url)
    host_dir, published = tmp_path / "ingest" / "data", tmp_path / "shared" / "published"

    def config_of(name: str, data_dir: Path) -> Path:
        return replica_config(
            tmp_path / f"{name}.toml",
            data_dir=data_dir, published_dir=published, database_url=pg_url, drop=drop.root,
        )  # fmt: skip

    config = config_of("ingest", host_dir)
    settings = load_settings(config, environ={})
    drop.put("VEHEXTRT.txt", ncic_file(BASE, stamp="202611220800"))
    ingest_source(settings, "ncic")
    purge(settings, None)  # version 1, no replica yet
    with registry_for(settings) as registry:  # consumers are in PostgreSQL
        key = registry.add("car-7", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    # Each replica has a data_dir of its own, holding only a copy of the access log's key
    # (the consumers, the log and the published versions are shared; docs/deploy.md).
    configs = []
    for i in (1, 2):
        own = tmp_path / f"replica-{i}"
        (own / "secrets").mkdir(parents=True, mode=0o700)
        own.chmod(0o700)
        copy = own / "secrets" / "audit-hmac.key"
        copy.write_bytes((host_dir / "secrets" / "audit-hmac.key").read_bytes())
        copy.chmod(0o600)
        configs.append(config_of(f"replica-{i}", own))
    return Site(settings, configs, pg_url, key, drop, tmp_path)


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-User": "car7", "X-Purpose": "patrol"}


def lookup(url: str, key: str, plate: str) -> dict[str, object]:
    answer = httpx.post(f"{url}/v1/lookup", json={"plate": plate}, headers=headers(key), timeout=30)
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


def until(done: Callable[[], bool], what: str, within_s: float = 20) -> float:
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > within_s:
            pytest.fail(f"{what} not within {within_s} s")
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def two(site: Site) -> Iterator[list[ReplicaProcess]]:
    """Both replicas up, each serving version 1 (they load it without being asked)."""
    with replicas(site.configs, site.tmp) as started:
        until(lambda: site.serving() == {"replica-1": 1, "replica-2": 1}, "both serve v1")
        yield started


def statuses(result: PurgeResult | PurgeIncomplete) -> dict[str, str]:
    return {str(r["name"]): str(r["status"]) for r in result.verification.replicas}


def test_the_purge_returns_once_both_replicas_serve_the_new_version(
    site: Site, two: list[ReplicaProcess]
) -> None:
    for i in range(6):  # requests alternate between the replicas
        answer = lookup(two[i % 2].url, site.key, REMOVED[0])
        assert (answer["version"], len(answer["hits"])) == (1, 1)  # type: ignore[arg-type]
    polls: dict[str, httpx.Response] = {}

    def poll(replica: ReplicaProcess) -> None:
        polls[replica.name] = httpx.get(
            f"{replica.url}/v1/hotlist",
            params={"since": 1, "wait": 60, "format": "parquet"},
            headers=headers(site.key),
            timeout=90,
        )

    waiting = [threading.Thread(target=poll, args=(r,)) for r in two]
    for thread in waiting:
        thread.start()
    site.day_two()
    time.sleep(0.5)
    assert not polls  # a version committed but not published yet: they still wait
    flipped: dict[str, float] = {}
    started = time.monotonic()

    def watch() -> None:  # when each replica's row says version 2, from the purge's start
        while len(flipped) < 2 and time.monotonic() - started < 60:
            for name, version in site.serving().items():
                if version == 2:
                    flipped.setdefault(name, time.monotonic() - started)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = purge(site.settings, None)
    took = time.monotonic() - started
    assert site.serving() == {"replica-1": 2, "replica-2": 2}
    for replica in two:  # right after the purge returned: no replica holds the removed plates
        for plate in REMOVED:
            answer = lookup(replica.url, site.key, plate)
            assert (answer["version"], answer["hits"]) == (2, [])
    for thread in waiting:
        thread.join(timeout=5)
    assert {n: (r.status_code, r.headers["X-Hotlist-Version"]) for n, r in polls.items()} == {
        "replica-1": (200, "2"), "replica-2": (200, "2")
    }  # fmt: skip
    watcher.join()
    assert statuses(result) == {"replica-1": "confirmed", "replica-2": "confirmed"}
    assert result.verification.ok and result.purged == len(REMOVED)
    assert "replicas: 2 confirmed" in result.verification.summary()
    # The deletion report lists the replicas and what each confirmed.
    assert result.report is not None
    summary = json.loads(result.report.with_suffix(".json").read_text())["summary"]
    [run] = summary["verifications"]
    assert [(r["name"], r["status"], r["serving_version"]) for r in run["replicas"]] == [
        ("replica-1", "confirmed", 2), ("replica-2", "confirmed", 2)
    ]  # fmt: skip
    assert (
        "replica-1 confirmed (version 2), replica-2 confirmed (version 2)"
        in summary["verification"]
    )
    # Published outside data_dir: the superseded version erased there, nothing under data_dir.
    published = site.settings.published_dir
    assert sorted(p.name for p in published.iterdir() if p.is_dir()) == ["changes", "v000000002"]
    assert not (site.settings.data_dir / "published").exists()
    print(f"purge {took:.2f} s; replicas serving v2 at {flipped} s after its start")
    # Acks alternate between the replicas too; every request of both, the purge's and the
    # acks' included, is one intact chain in PostgreSQL, as `hotlist audit verify` reads it.
    for i in range(4):
        ack = httpx.post(
            f"{two[i % 2].url}/v1/ack", json={"version": 2}, headers=headers(site.key), timeout=30
        )
        assert ack.status_code == 200, ack.text
    with registry_for(site.settings) as registry:
        [car] = registry.all_consumers()
    assert car.acked_version == 2
    check = audit.verify_chain(site.settings)
    assert check.ok, check.problems
    api = [r for r in audit.records(site.settings) if r["channel"] == "api"]
    assert len(api) >= 6 + 2 + 2 * len(REMOVED) + 4
    assert not any(audit.segment_paths(d) for d in (site.settings.data_dir, site.tmp / "replica-1"))


def test_a_consumer_added_and_revoked_on_the_ingest_host_holds_on_both_replicas(
    site: Site, two: list[ReplicaProcess]
) -> None:
    with registry_for(site.settings) as registry:
        key = registry.add("car-8", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
        for replica in two:
            assert lookup(replica.url, key, "7REP010")["hits"]
        registry.revoke("car-8")
    revoked = time.monotonic()
    for replica in two:
        while True:
            answer = httpx.post(
                f"{replica.url}/v1/lookup", json={"plate": "7REP010"}, headers=headers(key)
            )
            if answer.status_code == 401:
                break
            assert time.monotonic() - revoked < 1.0, f"{replica.name} still serves a revoked key"
            time.sleep(0.01)
    assert time.monotonic() - revoked < 1.0


def test_a_stuck_replica_fails_the_purge_by_name_until_it_serves_the_new_version(
    site: Site, two: list[ReplicaProcess]
) -> None:
    stuck = two[1]
    stuck.send(signal.SIGSTOP)
    site.day_two()
    started = time.monotonic()
    with pytest.raises(PurgeIncomplete) as failed:
        purge(site.settings, None)
    took = time.monotonic() - started
    places = [f.place for f in failed.value.verification.findings]
    assert places == ["replica replica-2"], failed.value.verification.findings
    assert "replica replica-2: live when version 2 was announced" in str(failed.value)
    assert not any(plate in str(failed.value) for plate in REMOVED)  # no record content
    assert statuses(failed.value) == {"replica-1": "confirmed", "replica-2": "not confirmed"}
    assert took < site.settings.purge.replica_wait_s + 10
    # Nothing was marked purged: the next purge, once the replica is back, finishes it.
    stuck.send(signal.SIGCONT)
    until(lambda: site.serving()["replica-2"] == 2, "the resumed replica serves v2")
    result = purge(site.settings, None)
    assert result.verification.ok and result.purged == len(REMOVED)
    assert statuses(result) == {"replica-1": "confirmed", "replica-2": "confirmed"}
    print(f"failed purge took {took:.2f} s")


def test_a_dead_replica_is_reported_not_serving_and_not_waited_for(
    site: Site, two: list[ReplicaProcess]
) -> None:
    dead, gone = two[1], two[0]
    dead.send(signal.SIGKILL)
    dead.proc.wait()
    time.sleep(LIVE_S + 0.5)  # its heartbeat is stale now
    site.day_two()
    result = purge(site.settings, None)
    assert result.verification.ok
    assert statuses(result) == {"replica-1": "confirmed", "replica-2": "not serving"}
    assert not [f for f in result.verification.findings if "replica" in f.place]
    # A clean shutdown drops the replica's row; the killed one's stays, stale.
    gone.send(signal.SIGTERM)
    assert gone.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert site.serving() == {"replica-2": 1}


def test_a_second_replica_under_a_live_replicas_name_is_refused(
    site: Site, two: list[ReplicaProcess]
) -> None:
    refused = "another live replica is registered as 'replica-1'"
    with pytest.raises(RuntimeError, match=refused), replicas(site.configs[:1], site.tmp / "b"):
        pass


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_nginx_routes_around_a_replica_stopped_mid_traffic(
    site: Site, two: list[ReplicaProcess], stop: signal.Signals
) -> None:
    with nginx([r.port for r in two], site.tmp) as front:
        answers: list[tuple[float, int]] = []
        errors: list[str] = []
        done = threading.Event()

        def traffic(plate: str) -> None:
            with httpx.Client(
                base_url=front.url, verify=client_tls(front.cert), headers=headers(site.key)
            ) as client:
                while not done.is_set():
                    try:
                        a = client.post("/v1/lookup", json={"plate": plate}, timeout=30)
                        b = client.get("/v1/hotlist", params={"since": 1}, timeout=30)
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))
                        continue
                    now = time.monotonic()
                    answers.extend([(now, a.status_code), (now, b.status_code)])

        clients = [threading.Thread(target=traffic, args=(p,)) for p in ("7REP010", "7REP011")]
        for thread in clients:
            thread.start()
        until(lambda: len(set(front.upstreams())) == 2, "requests reach both replicas")
        two[0].send(stop)
        stopped = time.monotonic()
        time.sleep(3)
        done.set()
        for thread in clients:
            thread.join(timeout=60)
    after = [status for at, status in answers if at > stopped + 0.5]
    assert not errors, errors[:5]
    assert {status for _, status in answers} == {200}, [s for _, s in answers if s != 200][:5]
    assert len(after) > 20  # the traffic went on, on the other replica
    last = front.upstreams()[-10:]
    assert all(u.endswith(f":{two[1].port}") for u in last), last
    print(f"{len(answers)} requests, {len(after)} after the stop, none failed")


def test_an_announced_version_is_read_past_a_stat_that_did_not_move(tmp_path: Path) -> None:
    """On NFS a stat may answer from cached attributes; a replica told of a new version
    opens CURRENT.json instead. Here the stat cannot move (same inode, size and mtime)."""
    from hotlist.serve.versions import HotlistCache

    current = tmp_path / "CURRENT.json"
    current.write_text('{"version": 1, "dir": "v000000001"}')
    cache = HotlistCache(tmp_path)
    assert cache.manifest()["version"] == 1
    before = current.stat()
    with open(current, "r+") as fh:  # rewritten in place: a stat sees nothing new
        fh.write('{"version": 2, "dir": "v000000002"}')
    os.utime(current, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache.manifest()["version"] == 1
    assert cache.manifest(fresh=True)["version"] == 2
    assert cache.manifest()["version"] == 2  # and what it read is kept


def test_a_replica_whose_name_was_taken_while_it_was_stopped_serves_nothing(
    site: Site, two: list[ReplicaProcess]
) -> None:
    """Paused past LIVE_S, a replica loses its name to a new process; when it resumes, the
    purge no longer sees what it holds, so it answers 503 instead of serving it."""
    old = two[0]
    old.send(signal.SIGSTOP)
    try:
        time.sleep(LIVE_S + 0.5)
        with replicas(site.configs[:1], site.tmp / "b") as [new]:
            old.send(signal.SIGCONT)
            started = time.monotonic()
            while True:
                answer = httpx.post(
                    f"{old.url}/v1/lookup",
                    json={"plate": "7REP010"},
                    headers=headers(site.key),
                    timeout=30,
                )
                if answer.status_code == 503:
                    break
                assert time.monotonic() - started < 5, answer.status_code
                time.sleep(0.05)
            assert "lost its registration" in answer.json()["detail"]
            assert lookup(new.url, site.key, "7REP010")["hits"]
            assert site.serving()["replica-1"] is not None
    finally:
        old.send(signal.SIGCONT)
