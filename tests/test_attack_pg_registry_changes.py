"""Every change to who may be served reaches the replicas' key caches: a TRUNCATE of the
consumers (no row trigger fires for it) and a rename, not only inserts, updates of keys
and revocations, and deletes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hotlist.pg import connect
from hotlist.pg.migrate import upgrade
from hotlist.serve.consumers import AgencyKind
from hotlist.serve.registry_pg import PgRegistry
from tests.test_pg_consumers import _until


@pytest.fixture
def registry(pg_url: str) -> Iterator[PgRegistry]:
    upgrade(pg_url)
    found = PgRegistry(pg_url)
    try:
        yield found
    finally:
        found.close()


@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE consumers CASCADE",
        "UPDATE consumers SET name = 'car-1-renamed'",
    ],
    ids=["truncate", "rename"],
)
def test_a_change_made_in_sql_reaches_the_key_cache_within_a_second(
    registry: PgRegistry, pg_url: str, statement: str
) -> None:
    key = registry.add("car-1", "CA0190000", "Demo PD", AgencyKind.CA_LOCAL)
    cache = registry.key_cache()
    try:
        assert _until(lambda: cache.get(key) is not None) < 1.0
        with connect(pg_url) as con:
            con.execute("DELETE FROM acks")
            con.execute(statement.encode())
        if statement.startswith("TRUNCATE"):
            assert _until(lambda: cache.get(key) is None) < 1.0
        else:
            took = _until(lambda: (c := cache.get(key)) is not None and c.name == "car-1-renamed")
            assert took < 1.0
    finally:
        cache.close()
