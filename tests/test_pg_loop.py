"""The API's appends to the access log in PostgreSQL, awaited on the event loop: the
records of concurrent requests grouped into few statements, in one intact chain with
another writer's; the loop serves on while a statement waits; a failure reaches every
request of its group; nothing is appended after the appends stopped."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import psycopg
import pytest

from hotlist import audit
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.audit.pg_loop import LoopAppends
from hotlist.pg.migrate import upgrade


def _record(i: int) -> audit.AccessRecord:
    return audit.AccessRecord("officer1", "CA0190000", "patrol", f"request {i}", "granted", "api")


class CountingAppends(LoopAppends):
    """The real appends, counting their statements."""

    statements = 0

    async def _append(self, records: list[audit.AccessRecord]) -> None:
        self.statements += 1
        await super()._append(records)


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


def test_the_loop_serves_on_while_an_append_waits_for_the_database(
    pg_url: str, tmp_path: Path
) -> None:
    upgrade(pg_url)
    writer = PgAccessLogWriter(pg_url, tmp_path)
    appends = LoopAppends(writer)
    ticks = 0

    async def main() -> None:
        nonlocal ticks
        await appends.append([_record(0)])  # connected
        with psycopg.connect(pg_url) as blocker:  # holds the head's row lock for a second
            blocker.execute("SELECT * FROM access_log_head FOR UPDATE")
            release = threading.Timer(1.0, blocker.rollback)
            release.start()
            waiting = asyncio.create_task(appends.append([_record(1)]))
            for _ in range(20):  # 0.2 s of other work on the loop
                await asyncio.sleep(0.01)
                ticks += 1
            assert not waiting.done(), "the loop stood still while the append waited"
            await waiting
            release.join()
        await appends.aclose()

    asyncio.run(main())
    writer.close()
    assert ticks == 20
    assert [r["data_element"] for r in audit.pg.records(pg_url)] == ["request 0", "request 1"]


def test_a_failed_statement_fails_every_request_waiting_on_it(pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    writer = PgAccessLogWriter(pg_url, tmp_path)
    appends = LoopAppends(writer)
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'.encode())
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )

        async def main() -> list[BaseException | None]:
            results = await asyncio.gather(
                *(appends.append([_record(i)]) for i in range(5)), return_exceptions=True
            )
            return list(results)

        results = asyncio.run(main())
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'.encode())
    assert all(isinstance(r, Exception) for r in results), results
    assert not list(audit.pg.records(pg_url))

    async def after_stop() -> None:
        await appends.aclose()
        await appends.append([_record(9)])

    with pytest.raises(RuntimeError, match="stopped"):
        asyncio.run(after_stop())
    writer.close()
    assert not list(audit.pg.records(pg_url))
