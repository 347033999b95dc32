"""A server's journal of access records on their way to PostgreSQL: whatever moment a
server dies at, the next one on its ``data_dir`` sends every record it answered for,
each exactly once, in one intact chain, and scrubs the journal; a live server's journal
is never taken; a damaged journal is refused, naming the file and line, not its content.

A "dead server" is made here as the kernel leaves one: its journal's descriptor closed
(the lock goes with it), nothing else done. The last test kills a real ``hotlist serve``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from hotlist import audit
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.audit.pg_journal import Journal, journal_dir
from hotlist.audit.pg_loop import LoopAppends
from hotlist.config import ConfigError, Settings
from hotlist.pg.migrate import upgrade
from hotlist.serve import consumers as reg
from hotlist.serve.registry import registry_for
from tests.builders import Drop
from tests.serving import server_process
from tests.test_pg_audit_api import _headers, _published


def _fields(i: int) -> dict[str, str]:
    return {
        "time": f"2026-12-02T10:00:00.{i:06d}+00:00",
        **audit.AccessRecord(
            "officer1", "CA0190000", "patrol", f"plate 7JRN{i:03d}", "granted", "api"
        ).fields(),
    }


def _die(journal: Journal) -> None:
    """What the kernel does to a killed server's journal: its descriptor closed."""
    os.close(journal._fd)
    journal._fd = -1


def _logged(url: str) -> list[str]:
    return [r["data_element"] for r in audit.pg.records(url)]


@pytest.fixture
def url(pg_url: str) -> str:
    upgrade(pg_url)
    return pg_url


def _restart(url: str, data_dir: Path) -> None:
    """A new server on ``data_dir``: made, then stopped cleanly."""
    writer = PgAccessLogWriter(url, data_dir)
    appends = LoopAppends(writer)
    asyncio.run(appends.aclose())
    writer.close()


def test_records_a_killed_server_never_sent_are_sent_by_the_next(url: str, tmp_path: Path) -> None:
    dead = Journal(tmp_path)
    dead.write([_fields(i) for i in range(3)])
    dead.write([_fields(3)])
    _die(dead)
    _restart(url, tmp_path)
    assert _logged(url) == [f"plate 7JRN{i:03d}" for i in range(4)]
    assert [r["time"] for r in audit.pg.records(url)] == [_fields(i)["time"] for i in range(4)]
    assert audit.pg_verify.verify_pg(url, tmp_path).ok
    assert not list(journal_dir(tmp_path).iterdir()), "the dead server's journal was not scrubbed"


def test_a_statement_that_landed_before_the_kill_is_not_sent_twice(
    url: str, tmp_path: Path
) -> None:
    """Killed between the statement's commit and its ``sent`` line."""
    writer = PgAccessLogWriter(url, tmp_path)
    dead = Journal(tmp_path)
    last = dead.write([_fields(0), _fields(1)])
    writer.append_fields(
        [_fields(0), _fields(1)],
        on_chained=lambda e: dead.sending(last, e[-1]["seq"], e[-1]["hash"]),
    )
    dead.write([_fields(2)])  # answered after, never sent
    _die(dead)
    writer.close()
    _restart(url, tmp_path)
    assert _logged(url) == ["plate 7JRN000", "plate 7JRN001", "plate 7JRN002"]
    assert audit.pg_verify.verify_pg(url, tmp_path).ok


def test_a_statement_chained_but_never_sent_is_sent(url: str, tmp_path: Path) -> None:
    """Killed between the ``sending`` line and the statement: not in the database."""
    writer = PgAccessLogWriter(url, tmp_path)
    dead = Journal(tmp_path)
    last = dead.write([_fields(0)])
    entries = writer.chain(writer.head(), [_fields(0)])
    dead.sending(last, entries[-1]["seq"], entries[-1]["hash"])
    _die(dead)
    writer.close()
    _restart(url, tmp_path)
    assert _logged(url) == ["plate 7JRN000"]
    assert audit.pg_verify.verify_pg(url, tmp_path).ok


def test_a_killed_recovery_is_recovered_once_more(url: str, tmp_path: Path) -> None:
    """The next server notes its statements in the dead file as its owner did: killed
    after sending them, the server after it sends nothing twice."""
    dead = Journal(tmp_path)
    dead.write([_fields(i) for i in range(2)])
    _die(dead)
    writer = PgAccessLogWriter(url, tmp_path)
    (left,) = Journal.dead(tmp_path)
    writer.append_fields(
        [f for _, f in left.records],
        on_chained=lambda e: left.note({"sending": 2, "seq": e[-1]["seq"], "hash": e[-1]["hash"]}),
    )
    os.close(left.fd)  # killed before its "sent" line
    writer.close()
    _restart(url, tmp_path)
    assert _logged(url) == ["plate 7JRN000", "plate 7JRN001"]


def test_a_torn_last_line_is_ignored(url: str, tmp_path: Path) -> None:
    """Killed mid-write: that request was never answered."""
    dead = Journal(tmp_path)
    dead.write([_fields(0)])
    os.write(dead._fd, b'{"n":2,"time":"2026-12-02T1')
    _die(dead)
    _restart(url, tmp_path)
    assert _logged(url) == ["plate 7JRN000"]


def test_a_damaged_journal_is_refused_naming_the_file_and_line_not_its_content(
    url: str, tmp_path: Path
) -> None:
    dead = Journal(tmp_path)
    dead.write([_fields(0)])
    os.write(dead._fd, b"7JRNXYZ garbage\n")
    dead.write([_fields(2)])
    path = dead.path
    _die(dead)
    writer = PgAccessLogWriter(url, tmp_path)
    with pytest.raises(ConfigError) as refused:
        LoopAppends(writer)
    writer.close()
    assert f"{path}, line 2" in str(refused.value)
    assert "7JRN" not in str(refused.value).replace(str(path), "")
    assert path.exists(), "the damaged journal must be kept for the audit"
    assert not _logged(url)


def test_a_live_servers_journal_is_not_taken(url: str, tmp_path: Path) -> None:
    """Two servers on one ``data_dir`` (replicas on one host): the second to start leaves
    the first one's records to it."""
    writer = PgAccessLogWriter(url, tmp_path)
    one = LoopAppends(writer)
    one.journal.write([_fields(0)])  # written, not yet sent
    other = PgAccessLogWriter(url, tmp_path)
    two = LoopAppends(other)
    assert not _logged(url)
    assert one.journal.path.exists()
    asyncio.run(two.aclose())
    other.close()
    one.journal.close()  # not all sent: kept for the next server
    writer.close()
    _restart(url, tmp_path)
    assert _logged(url) == ["plate 7JRN000"]


def test_a_server_killed_while_the_database_waits_loses_no_answered_request(
    make_settings: Callable[..., Settings], drop: Drop, pg_url: str, tmp_path: Path
) -> None:
    """A real ``hotlist serve``: lookups answered while the log's head row is locked
    (their records in the journal only, the first of them in a statement that waits),
    the server killed -9, the lock released, a new server started: every answered lookup
    is in the log once, the chain intact, and no journal left."""
    settings = _published(make_settings, drop, pg_url)
    with registry_for(settings) as registry:
        key = registry.add("patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    config = settings.data_dir.parent / "hotlist.toml"
    answered = 0
    with psycopg.connect(pg_url) as blocker:
        with server_process(config, tmp_path) as server:
            base = f"http://127.0.0.1:{server.port}"
            first = httpx.post(
                f"{base}/v1/lookup", json={"plate": "7API001"}, headers=_headers(key)
            )
            assert first.status_code == 200
            deadline = time.monotonic() + 10
            while len(_logged(pg_url)) < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            blocker.execute("SELECT * FROM access_log_head FOR UPDATE")
            for _ in range(5):
                answer = httpx.post(
                    f"{base}/v1/lookup", json={"plate": "7API001"}, headers=_headers(key)
                )
                assert answer.status_code == 200
                answered += 1
            os.kill(server.pid, signal.SIGKILL)
            time.sleep(0.5)
        blocker.rollback()
    # The statement in flight at the kill lands once the lock goes (PostgreSQL finishes
    # it before it notices its client gone): the journal's "sending" line tells.
    assert len(_logged(pg_url)) < 1 + answered
    assert list(journal_dir(settings.data_dir).iterdir()), "the killed server left no journal"
    with server_process(config, tmp_path) as again:
        assert again.port
    logged = _logged(pg_url)
    assert logged == ["plate 7API001"] * (1 + answered)
    assert audit.verify_chain(settings).ok
    assert not list(journal_dir(settings.data_dir).iterdir())


def test_the_purge_searches_a_journal_as_the_access_log(tmp_path: Path) -> None:
    """A removed plate may sit in a journal only as the queried element (SB 34), as in
    the log itself; in any other field it is a finding, and so is its record's NIC."""
    from hotlist.verify import verify

    journal = Journal(tmp_path)
    journal.write([_fields(7)])  # plate 7JRN007 queried: lawful
    assert verify(tmp_path, None, ["7JRN007"], record_ids=["V000000007"]).ok
    journal.write([{**_fields(8), "outcome": "granted: hit V000000007 7JRN007"}])
    found = verify(tmp_path, None, ["7JRN007"], record_ids=["V000000007"])
    assert not found.ok
    assert all(str(journal.path) in f.place for f in found.findings), found.findings
    journal.close()


def test_a_journal_all_sent_is_replaced_and_scrubbed_as_it_grows(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records stay in the journal seconds, not days: past its size, a file whose records
    are all in the database gives way to a new one, and is overwritten before unlinked."""
    from hotlist.audit import pg_journal

    monkeypatch.setattr(pg_journal, "ROTATE_AT", 2000)
    scrubbed: list[bytes] = []
    real_scrub = pg_journal.scrub_fd

    def watched(fd: int) -> None:
        real_scrub(fd)
        with open(f"/proc/self/fd/{fd}", "rb") as fh:  # the file as it is left
            scrubbed.append(fh.read())

    monkeypatch.setattr(pg_journal, "scrub_fd", watched)
    writer = PgAccessLogWriter(url, tmp_path)
    appends = LoopAppends(writer)
    first = appends.journal.path

    async def main() -> None:
        for i in range(60):
            await appends.append(
                [
                    audit.AccessRecord(
                        "officer1", "CA0190000", "patrol", f"plate 7ROT{i:03d}", "granted", "api"
                    )
                ]
            )
            await asyncio.sleep(0.005)
        await appends.aclose()

    asyncio.run(main())
    writer.close()
    assert _logged(url) == [f"plate 7ROT{i:03d}" for i in range(60)]
    assert not first.exists()
    assert len(scrubbed) >= 2, "the journal was never replaced"
    assert all(set(data) <= {0} for data in scrubbed), "a journal was unlinked unscrubbed"
    assert not list(journal_dir(tmp_path).iterdir())
