"""The API's appends to a log across a network (PostgreSQL): off the event loop, the
records of concurrent requests grouped into few statements, in one intact chain; a
failure reaches every request of its group; nothing pending is lost at shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from hotlist import audit
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.pg.migrate import upgrade
from hotlist.serve.log_batches import LogBatches


def _record(i: int) -> audit.AccessRecord:
    return audit.AccessRecord("officer1", "CA0190000", "patrol", f"request {i}", "granted", "api")


class CountingWriter(PgAccessLogWriter):
    """The real writer, counting its statements."""

    statements = 0

    def append_many(self, records, at=None):  # type: ignore[no-untyped-def]
        self.statements += 1
        return super().append_many(records, at)


def test_concurrent_requests_share_statements_and_keep_one_chain(
    pg_url: str, tmp_path: Path
) -> None:
    upgrade(pg_url)
    writer = CountingWriter(pg_url, tmp_path)
    batches = LogBatches(writer)

    async def main() -> None:
        await asyncio.gather(*(batches.append([_record(i)]) for i in range(300)))

    asyncio.run(main())
    batches.stop()
    writer.close()
    logged = list(audit.pg.records(pg_url))
    assert sorted(r["data_element"] for r in logged) == sorted(f"request {i}" for i in range(300))
    assert [r["seq"] for r in logged] == list(range(1, 301))
    assert writer.statements < 300, "every request had a statement of its own"
    check = audit.pg_verify.verify_pg(pg_url, tmp_path)
    assert check.ok, check.problems


def test_a_failed_statement_fails_every_request_waiting_on_it(pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    writer = PgAccessLogWriter(pg_url, tmp_path)
    batches = LogBatches(writer)
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'.encode())
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )

        async def main() -> list[BaseException | None]:
            results = await asyncio.gather(
                *(batches.append([_record(i)]) for i in range(5)), return_exceptions=True
            )
            return list(results)

        results = asyncio.run(main())
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'.encode())
    batches.stop()
    writer.close()
    assert all(isinstance(r, Exception) for r in results), results
    assert not list(audit.pg.records(pg_url))
    with pytest.raises(RuntimeError, match="stopped"):
        asyncio.run(batches.append([_record(9)]))
