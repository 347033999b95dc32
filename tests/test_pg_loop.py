"""The API's appends to the access log in PostgreSQL, awaited on the event loop: the
records of concurrent requests grouped into few statements, in one intact chain with
another writer's; an answer waits for the journal, not for the database; while the
database is away requests are refused and nothing answered is lost; nothing is appended
after the appends stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hotlist import audit, pg
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.audit.pg_journal import journal_dir
from hotlist.audit.pg_loop import LoopAppends
from hotlist.pg.migrate import upgrade


def _record(i: int) -> audit.AccessRecord:
    return audit.AccessRecord("officer1", "CA0190000", "patrol", f"request {i}", "granted", "api")


class CountingAppends(LoopAppends):
    """The real appends, counting their statements."""

    statements = 0

    async def _append(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        self.statements += 1
        await super()._append(batch)


def test_concurrent_requests_share_statements_and_keep_one_chain_with_another_writer(
    pg_url: str, tmp_path: Path
) -> None:
    upgrade(pg_url)
    writer = PgAccessLogWriter(pg_url, tmp_path)
    other = PgAccessLogWriter(pg_url, tmp_path)  # another replica, appending meanwhile
    appends = CountingAppends(writer)

    async def main() -> None:
        async def replica() -> None:
            for i in range(20):
                await asyncio.to_thread(other.append, _record(1000 + i))

        await asyncio.gather(replica(), *(appends.append([_record(i)]) for i in range(300)))
        await appends.aclose()

    asyncio.run(main())
    writer.close()
    other.close()
    logged = list(audit.pg.records(pg_url))
    expected = [f"request {i}" for i in (*range(300), *range(1000, 1020))]
    assert sorted(r["data_element"] for r in logged) == sorted(expected)
    assert [r["seq"] for r in logged] == list(range(1, 321))
    assert appends.statements < 300, "every request had a statement of its own"
    check = audit.pg_verify.verify_pg(pg_url, tmp_path)
    assert check.ok, check.problems


def test_an_answer_waits_for_the_journal_not_for_the_database(pg_url: str, tmp_path: Path) -> None:
    """While the head row is locked, an append returns at once: its record is in the
    journal (on disk, where a crash of the server cannot take it), not yet in the
    database; it reaches the database once the lock goes."""
    upgrade(pg_url)
    writer = PgAccessLogWriter(pg_url, tmp_path)
    appends = LoopAppends(writer)

    async def main() -> None:
        await appends.append([_record(0)])
        while not list(audit.pg.records(pg_url)):  # sent behind the answer
            await asyncio.sleep(0.01)
        with psycopg.connect(pg_url) as blocker:  # holds the head's row lock for a second
            blocker.execute("SELECT * FROM access_log_head FOR UPDATE")
            await asyncio.wait_for(appends.append([_record(1)]), timeout=0.5)
            journaled = appends.journal.path.read_bytes()
            assert b'"data_element":"request 1"' in journaled
            logged = [r["data_element"] for r in audit.pg.records(pg_url)]
            assert logged == ["request 0"]
            await asyncio.sleep(0.5)
            blocker.rollback()
        await appends.aclose()

    asyncio.run(main())
    writer.close()
    assert [r["data_element"] for r in audit.pg.records(pg_url)] == ["request 0", "request 1"]
    assert not list(journal_dir(tmp_path).iterdir()), "a journal all sent was left behind"
    assert audit.pg_verify.verify_pg(pg_url, tmp_path).ok


def test_while_the_database_is_away_requests_are_refused_and_none_answered_is_lost(
    pg_url: str, tmp_path: Path
) -> None:
    """The journal bridges a round trip, not an outage: once a statement failed, appends
    are refused (naming the database), and what the journal took before is sent when the
    database is back; every append that returned is in the log once, none that raised."""
    upgrade(pg_url)
    writer = PgAccessLogWriter(pg_url, tmp_path)
    appends = LoopAppends(writer)
    database = pg_url.rsplit("/", 1)[1]
    admin = psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True)

    def gate(allow: bool) -> None:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allow}'.encode())
        if not allow:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )

    async def main() -> tuple[list[str], list[str]]:
        taken: list[str] = []
        refused: list[str] = []
        await appends.append([_record(0)])
        await asyncio.sleep(0.2)
        gate(False)
        for i in range(1, 40):
            try:
                await appends.append([_record(i)])
                taken.append(f"request {i}")
            except pg.DatabaseUnavailable as exc:
                refused.append(str(exc))
            await asyncio.sleep(0.05)
        gate(True)
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                await appends.append([_record(99)])
                break
            except pg.DatabaseUnavailable:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
        await appends.aclose()
        return taken, refused

    try:
        taken, refused = asyncio.run(main())
    finally:
        gate(True)
        admin.close()
    writer.close()
    assert refused, "appends went on while the database was away"
    assert all("PostgreSQL at" in why for why in refused), refused
    logged = [r["data_element"] for r in audit.pg.records(pg_url)]
    assert logged == ["request 0", *taken, "request 99"]
    assert audit.pg_verify.verify_pg(pg_url, tmp_path).ok

    async def after_stop() -> None:
        await appends.append([_record(9)])

    with pytest.raises(RuntimeError, match="stopped"):
        asyncio.run(after_stop())


def test_a_statements_error_is_told_without_the_row_it_quotes(pg_url: str) -> None:
    """PostgreSQL quotes the failing row in its error; what the appends log and put in a
    503 names the error's class and SQLSTATE, never the row (an access record's content)."""
    with pg.connect(pg_url) as con:
        con.execute("CREATE TEMP TABLE quoted (seq int NOT NULL, data_element text)")
        with pytest.raises(psycopg.Error) as raised:
            con.execute("INSERT INTO quoted VALUES (NULL, 'plate 7ABC123')")
    assert "7ABC123" in str(raised.value)  # what a plain str() would have told
    told = pg.reason(raised.value)
    assert "7ABC123" not in told
    assert told == "NotNullViolation (SQLSTATE 23502)"
