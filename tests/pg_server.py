"""A throwaway PostgreSQL cluster for tests of the shared serving state
(``[serve] database_url``): :mod:`hotlist.testing.postgres` plus the fixtures.

The cluster logic lives in ``hotlist.testing.postgres`` so that ``bench/`` can use it
too; here a missing server skips the test with its reason (a failure under CI=true, by
``tests.real_components``). One cluster per test session (``postgres``); each test that
asks for ``pg_url`` gets a database of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from hotlist.testing import postgres as pg_testing
from hotlist.testing.postgres import Cluster, PostgresUnavailable

__all__ = ["Cluster", "pg_url", "postgres", "start_cluster", "waiting_on_the_head"]


def start_cluster() -> Cluster:
    """A cluster with ``fsync = off``; skips the test when PostgreSQL is not installed."""
    try:
        return pg_testing.start_cluster(fsync=False)
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(postgres: Cluster) -> str:
    """A new, empty database of the session's cluster."""
    return postgres.create_database()


def waiting_on_the_head(url: str) -> int:
    """Statements of ``url``'s database waiting now for the access log's head row lock."""
    with psycopg.connect(url) as con:
        row = con.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%access_log_head%'"
        ).fetchone()
    return int(row[0]) if row else 0
