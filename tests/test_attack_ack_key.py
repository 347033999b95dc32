"""Attack pass on key-bound acknowledgements (``POST /v1/ack``): an ack counts only under
the consumer's active key, whatever the key cache last saw, whichever replica it
reaches. Real uvicorn servers over real sockets, the real SQLite registry, a throwaway
PostgreSQL cluster for the shared registry."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.pg.migrate import upgrade
from hotlist.purge import purge
from hotlist.reports import deletion_report
from hotlist.serve import consumers as reg
from hotlist.serve.registry_pg import PgRegistry
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import running_api

BASE = [ncic_line(f"V{i:09d}", f"7ACK{i:03d}") for i in range(20)]
CA = reg.AgencyKind.CA_LOCAL


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings("guards = {max_removal_share = 0.5}")


def _publish(settings: Settings, drop: Drop, lines: list[str], day: int) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(lines, stamp=f"2026112{day}0800"))
    ingest_source(settings, "ncic")
    assert purge(settings, None).verification.ok


@pytest.fixture
def api(settings: Settings, drop: Drop) -> Iterator[str]:
    """A server at version 2: version 2 removed the first record of version 1."""
    _publish(settings, drop, BASE, 1)
    _publish(settings, drop, BASE[1:], 2)
    with running_api(settings) as url:
        yield url


def _ack(api: str, key: str, version: int) -> httpx.Response:
    return httpx.post(
        f"{api}/v1/ack",
        json={"version": version},
        headers={"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"},
        timeout=30,
    )


def _acked(settings: Settings) -> dict[str, int | None]:
    return {c.name: c.acked_version for c in reg.all_consumers(settings.data_dir)}


def _history(settings: Settings) -> dict[str, list[int]]:
    return {n: [v for v, _ in h] for n, h in reg.ack_history(settings.data_dir).items()}


def test_a_key_revoked_just_before_its_ack_records_nothing_though_the_cache_may_admit_it(
    api: str, settings: Settings
) -> None:
    """The key cache may admit a key for a moment after its revocation (it re-reads the
    registry at most every half second); the ack itself asks the registry, so a key
    revoked a moment before never vouches for a copy. Ten consumers, each revoked and
    then at once acking: all refused, nothing recorded."""
    keys = {f"car-{n}": reg.add(settings.data_dir, f"car-{n}", "CA0190000", "Demo PD", CA)
            for n in range(10)}  # fmt: skip
    for name, key in keys.items():
        assert _ack(api, key, 1).status_code == 200  # known to the cache, acked once
        reg.revoke(settings.data_dir, name)
        assert _ack(api, key, 2).status_code == 401
    assert _acked(settings) == dict.fromkeys(keys, 1)
    assert _history(settings) == {name: [1] for name in keys}


def test_a_rotated_key_is_refused_at_once_and_the_new_key_carries_on(
    api: str, settings: Settings
) -> None:
    old = reg.add(settings.data_dir, "car-1", "CA0190000", "Demo PD", CA)
    assert _ack(api, old, 1).status_code == 200
    new = reg.rotate(settings.data_dir, "car-1")
    assert _ack(api, old, 2).status_code == 401
    assert _acked(settings) == {"car-1": 1}
    answer = _ack(api, new, 2)
    assert answer.status_code == 200
    assert answer.json() == {"consumer": "car-1", "acked_version": 2}
    assert _history(settings) == {"car-1": [1, 2]}


def test_a_key_acks_only_for_its_own_consumer(api: str, settings: Settings) -> None:
    """Consumers cannot vouch for one another: an ack counts for the key's consumer."""
    first = reg.add(settings.data_dir, "car-1", "CA0190000", "Demo PD", CA)
    reg.add(settings.data_dir, "car-2", "CA0190000", "Demo PD", CA)
    assert _ack(api, first, 2).json()["consumer"] == "car-1"
    assert _acked(settings) == {"car-1": 2, "car-2": None}


def test_an_ack_of_a_version_not_yet_published_or_by_an_unknown_key_records_nothing(
    api: str, settings: Settings
) -> None:
    key = reg.add(settings.data_dir, "car-1", "CA0190000", "Demo PD", CA)
    assert _ack(api, key, 3).status_code == 409
    assert _ack(api, key, 2**62).status_code == 409
    assert _ack(api, "hl_" + "A" * 43, 1).status_code == 401
    assert _ack(api, key, 0).status_code == 422
    assert _acked(settings) == {"car-1": None}
    assert _history(settings) == {}


def test_a_consumer_that_may_not_receive_data_cannot_ack(api: str, settings: Settings) -> None:
    fed = reg.add(settings.data_dir, "fed", "DC0000000", "A federal agency", reg.AgencyKind.FEDERAL)
    assert _ack(api, fed, 1).status_code == 403
    assert _acked(settings) == {"fed": None}


def test_concurrent_acks_racing_a_revocation_record_only_what_the_registry_accepted(
    api: str, settings: Settings
) -> None:
    """Acks of versions 1 and 2 sent from four threads while the consumer is revoked:
    every ack answered 200 came before the revocation, every one after it is refused,
    and the history holds no advance that was refused."""
    key = reg.add(settings.data_dir, "car-1", "CA0190000", "Demo PD", CA)
    assert _ack(api, key, 1).status_code == 200  # the cache knows the key
    answers: list[int] = []
    after_revocation: list[int] = []
    revoked = threading.Event()
    lock = threading.Lock()
    start = threading.Barrier(5)

    def acker(version: int) -> None:
        start.wait()
        for _ in range(15):
            was_revoked = revoked.is_set()
            status = _ack(api, key, version).status_code
            with lock:
                (after_revocation if was_revoked else answers).append(status)

    threads = [threading.Thread(target=acker, args=(1 + n % 2,)) for n in range(4)]
    for t in threads:
        t.start()
    start.wait()
    reg.revoke(settings.data_dir, "car-1")
    revoked.set()
    for t in threads:
        t.join(timeout=120)
    assert set(answers) <= {200, 401}
    assert after_revocation and set(after_revocation) == {401}
    [consumer] = reg.all_consumers(settings.data_dir)
    history = [v for v, _ in reg.ack_history(settings.data_dir)["car-1"]]
    assert consumer.revoked_at is not None
    assert history in ([1], [1, 2])
    assert consumer.acked_version == history[-1]
    if history == [1, 2]:  # version 2 was recorded only if some ack of it was granted
        assert 200 in answers


def test_concurrent_acks_of_one_key_are_dated_in_the_order_of_their_versions(
    settings: Settings,
) -> None:
    """The local registry dates an advance under its write lock: an advance recorded
    later never carries an earlier time (the report reads when a copy dropped a removal
    from these times)."""
    key = reg.add(settings.data_dir, "car-9", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    versions = sorted(range(1, 121), key=lambda v: (v * 37) % 121)  # out of order
    start = threading.Barrier(6)

    def acker(mine: list[int]) -> None:
        start.wait()
        for version in mine:
            assert reg.ack(settings.data_dir, key, version)

    threads = [threading.Thread(target=acker, args=(versions[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = reg.ack_history(settings.data_dir)["car-9"]
    assert [v for v, _ in history] == sorted({v for v, _ in history})
    assert history[-1][0] == 120
    times = [at for _, at in history]
    assert times == sorted(times)


def test_the_deletion_report_counts_a_copy_purged_only_when_its_active_key_acked(
    api: str, settings: Settings
) -> None:
    """Version 2 removed a record. A copy whose old key acks version 2 after a rotation
    is still outstanding for that removal; once the new key acks, it dropped it then."""
    old = reg.add(settings.data_dir, "car-1", "CA0190000", "Demo PD", CA)
    assert _ack(api, old, 1).status_code == 200
    new = reg.rotate(settings.data_dir, "car-1")
    assert _ack(api, old, 2).status_code == 401
    rows, _ = deletion_report(settings)
    [removal] = rows.to_dicts()
    assert removal["outstanding_copies"] == "car-1"
    assert not removal["copies_purged"]
    assert _status_row(settings)[2:4] == ["1", "1"]  # acked version 1: one behind
    assert _ack(api, new, 2).status_code == 200
    rows, _ = deletion_report(settings)
    [removal] = rows.to_dicts()
    assert removal["outstanding_copies"] == ""
    assert _status_row(settings)[2:4] == ["2", "0"]
    assert str(removal["copies_purged"]).startswith("car-1 ")


def _status_row(settings: Settings) -> list[str]:
    """``hotlist status``'s row for car-1 in the patrol copies table, cell by cell:
    consumer, agency, acked version, lag, acked at, last pull, copy."""
    config = settings.data_dir.parent / "hotlist.toml"
    shown = CliRunner().invoke(app, ["status", "-c", str(config)], env={"COLUMNS": "250"})
    assert shown.exit_code in (0, 3), shown.output
    [row] = [line for line in shown.output.splitlines() if "│ car-1 " in line]
    return [cell.strip() for cell in row.split("│")[1:-1]]


# -- PostgreSQL: the registry shared by replicas -------------------------------------


@pytest.fixture
def registry(pg_url: str) -> Iterator[PgRegistry]:
    upgrade(pg_url)
    with PgRegistry(pg_url) as found:
        yield found


def test_pg_acks_under_a_key_rotated_meanwhile_never_advance_after_the_rotation(
    registry: PgRegistry, pg_url: str
) -> None:
    """Two replicas (two registries, two pools) ack increasing versions with the old key
    while a third rotates it: each ack answered True that advanced is in the history,
    every ack after the rotation returned is refused, and the new key carries on from
    the highest version recorded."""
    old = registry.add("car-1", "CA0190000", "Demo PD", CA)
    replicas = [PgRegistry(pg_url), PgRegistry(pg_url)]
    accepted: list[list[int]] = [[], []]
    rotated = threading.Event()
    after_rotation: list[bool] = []
    start = threading.Barrier(3)

    def acker(n: int) -> None:
        start.wait()
        for version in range(1 + n, 400, 2):
            was_rotated = rotated.is_set()
            ok = replicas[n].ack(old, version)
            if ok:
                accepted[n].append(version)
            if was_rotated:
                after_rotation.append(ok)

    threads = [threading.Thread(target=acker, args=(n,)) for n in range(2)]
    try:
        for t in threads:
            t.start()
        start.wait()
        new = registry.rotate("car-1")
        rotated.set()
        for t in threads:
            t.join(timeout=120)
    finally:
        for r in replicas:
            r.close()
    assert after_rotation and not any(after_rotation)
    history = [v for v, _ in registry.ack_history().get("car-1", [])]
    assert history == sorted(history)
    assert set(history) <= set(accepted[0]) | set(accepted[1])
    [consumer] = registry.all_consumers()
    assert consumer.acked_version == (history[-1] if history else None)
    assert registry.ack(new, 400)
    assert not registry.ack(old, 401)
    [consumer] = registry.all_consumers()
    assert consumer.acked_version == 400


def test_pg_an_ack_dated_in_the_database_follows_the_rotation_order(registry: PgRegistry) -> None:
    """History times are the database's and never go backwards within a consumer,
    across a rotation and a revocation."""
    old = registry.add("car-1", "CA0190000", "Demo PD", CA)
    assert registry.ack(old, 1)
    new = registry.rotate("car-1")
    assert not registry.ack(old, 5)
    assert registry.ack(new, 2)
    registry.revoke("car-1")
    assert not registry.ack(new, 3)
    history = registry.ack_history()["car-1"]
    assert [v for v, _ in history] == [1, 2]
    assert history[0][1] <= history[1][1]
    [consumer] = registry.all_consumers()
    assert consumer.revoked_at is not None and consumer.acked_version == 2
    assert history[1][1] <= consumer.revoked_at
