"""The access log's journal (``[serve] database_url``) attacked where a server dies, its
disk fills, or its last line is torn: every answered request is in the log exactly once,
the chain intact, and the next server starts.

Real PostgreSQL, real files, real ``hotlist serve`` processes killed with SIGKILL where
the kill is the point."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
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
from hotlist.config import Settings
from hotlist.pg.migrate import upgrade
from hotlist.serve import consumers as reg
from hotlist.serve.registry import registry_for
from tests.builders import Drop
from tests.pg_server import waiting_on_the_head
from tests.serving import server_process
from tests.test_pg_audit_api import _headers, _published
from tests.test_pg_journal import _die, _fields, _logged


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


def test_a_killed_servers_statement_that_lands_during_the_recovery_is_not_sent_twice(
    make_settings: Callable[..., Settings], drop: Drop, pg_url: str, tmp_path: Path
) -> None:
    """A real ``hotlist serve`` killed -9 while its statement waits on the head row's lock
    (PostgreSQL finishes it whenever the lock goes: it does not notice its client gone);
    the next server starts while the lock is still held, so its question "did that
    statement land?" is answered no, and the dead one lands just before the recovery's own
    statement. Every answered lookup is in the log once, the chain intact."""
    settings = _published(make_settings, drop, pg_url)
    with registry_for(settings) as registry:
        key = registry.add("patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    config = settings.data_dir.parent / "hotlist.toml"
    answered = 0
    blocker = psycopg.connect(pg_url)
    try:
        with server_process(config, tmp_path) as server:
            base = f"http://127.0.0.1:{server.port}"
            first = httpx.post(
                f"{base}/v1/lookup", json={"plate": "7API001"}, headers=_headers(key)
            )
            assert first.status_code == 200
            answered += 1
            deadline = time.monotonic() + 10
            while len(_logged(pg_url)) < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            blocker.execute("SELECT * FROM access_log_head FOR UPDATE")
            for _ in range(3):
                answer = httpx.post(
                    f"{base}/v1/lookup", json={"plate": "7API001"}, headers=_headers(key)
                )
                assert answer.status_code == 200
                answered += 1
            deadline = time.monotonic() + 10
            while waiting_on_the_head(pg_url) < 1:  # the dead server's statement, in flight
                assert time.monotonic() < deadline
                time.sleep(0.02)
            os.kill(server.pid, signal.SIGKILL)
            time.sleep(0.3)
        assert list(journal_dir(settings.data_dir).iterdir()), "the killed server left no journal"

        def release_once_the_recovery_waits_too() -> None:
            limit = time.monotonic() + 60
            while waiting_on_the_head(pg_url) < 2 and time.monotonic() < limit:
                time.sleep(0.05)
            blocker.rollback()

        releaser = threading.Thread(target=release_once_the_recovery_waits_too)
        releaser.start()
        with server_process(config, tmp_path) as again:
            assert again.port
        releaser.join()
    finally:
        blocker.close()
    assert _logged(pg_url) == ["plate 7API001"] * answered
    assert audit.verify_chain(settings).ok
    assert not list(journal_dir(settings.data_dir).iterdir())


def test_a_torn_last_line_survives_a_recovery_killed_midway(url: str, tmp_path: Path) -> None:
    """A server killed mid-write leaves a torn last line; the server that takes its
    journal over notes its statement in that file and is killed before it is done. The
    server after it starts (the torn line is not the last any more, yet no answered
    request is behind it) and sends each record once."""
    dead = Journal(tmp_path)
    dead.write([_fields(0), _fields(1)])
    os.write(dead._fd, b'{"n":3,"time":"2026-12-02T1')  # killed mid-write: never answered
    _die(dead)
    writer = PgAccessLogWriter(url, tmp_path)
    (left,) = Journal.dead(tmp_path)
    assert [n for n, _ in left.records] == [1, 2]
    writer.append_fields(
        [f for _, f in left.records],
        on_chained=lambda e: left.note({"sending": 2, "seq": e[-1]["seq"], "hash": e[-1]["hash"]}),
    )
    os.close(left.fd)  # the recovering server killed before its "sent" line
    writer.close()
    _restart(url, tmp_path)
    assert _logged(url) == ["plate 7JRN000", "plate 7JRN001"]
    assert audit.pg_verify.verify_pg(url, tmp_path).ok
    assert not list(journal_dir(tmp_path).iterdir())


def _write_with_the_disk_full_after(journal: Journal, room: int, fields: dict[str, str]) -> None:
    """``journal.write`` while the file may grow by ``room`` bytes only: the kernel writes
    what fits and refuses the rest (RLIMIT_FSIZE, as a full disk does: a short write,
    then an error)."""
    import resource

    size = os.fstat(journal._fd).st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + room, hard))
    try:
        journal.write([fields])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_write_the_full_disk_cut_short_leaves_the_journal_readable(
    url: str, tmp_path: Path
) -> None:
    """A full disk cuts a journal write short: that request is refused (the write raised),
    and the bytes that did land are taken back, so the lines written once there is room
    again are lines. A server killed after that leaves a journal the next server sends
    (each answered record once, none of the refused one), instead of refusing to start."""
    journal = Journal(tmp_path)
    journal.write([_fields(0)])
    with pytest.raises(OSError, match="too large"):  # EFBIG, as ENOSPC
        _write_with_the_disk_full_after(journal, 20, _fields(1))
    journal.write([_fields(2)])  # room again
    _die(journal)
    _restart(url, tmp_path)
    assert _logged(url) == ["plate 7JRN000", "plate 7JRN002"]
    assert audit.pg_verify.verify_pg(url, tmp_path).ok
    assert not list(journal_dir(tmp_path).iterdir())


class _KilledBeforeSending(PgAccessLogWriter):
    """A writer whose process dies right after its statement was noted in the journal,
    before the statement leaves (the kill point; everything else is the real writer)."""

    def _write(self, old: object, entries: object, token: int) -> tuple[int, str, int]:
        raise _Killed


class _Killed(BaseException):
    pass


def test_a_recovery_killed_after_finding_the_dead_statement_landed_sends_nothing_twice(
    url: str, tmp_path: Path
) -> None:
    """The dead server's statement had landed; the recovery finds so, notes its own
    statement for the records after it, and is killed before sending it. The server
    after it must not take the landed records for unsent."""
    writer = PgAccessLogWriter(url, tmp_path)
    dead = Journal(tmp_path)
    last = dead.write([_fields(0)])
    writer.append_fields(
        [_fields(0)], on_chained=lambda e: dead.sending(last, e[-1]["seq"], e[-1]["hash"])
    )
    dead.write([_fields(1)])  # answered, never sent
    _die(dead)
    writer.close()
    killed = _KilledBeforeSending(url, tmp_path)
    with pytest.raises(_Killed):
        LoopAppends(killed)
    for left_fd in _open_journal_fds(tmp_path):  # what the kernel does to the killed one
        os.close(left_fd)
    killed.close()
    _restart(url, tmp_path)
    assert _logged(url) == ["plate 7JRN000", "plate 7JRN001"]
    assert audit.pg_verify.verify_pg(url, tmp_path).ok


def _open_journal_fds(data_dir: Path) -> list[int]:
    """This process's descriptors open on a journal file under ``data_dir``."""
    folder = str(journal_dir(data_dir))
    found = []
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue
        if target.startswith(folder):
            found.append(int(entry))
    return found


def test_a_dead_servers_journal_is_scrubbed_only_once_its_records_are_durable(
    tmp_path: Path,
) -> None:
    """The recovery's statements commit with ``synchronous_commit = off``: until the WAL
    is flushed, a crash of PostgreSQL takes them. The dead server's journal (durable, its
    records answered for) is scrubbed only after they are on disk in the database: a
    PostgreSQL crash right after the recovery loses none of them.

    A cluster of its own whose WAL writer waits 10 s, stopped with ``-m immediate`` (what
    a crash leaves: the WAL buffers not written are gone)."""
    from hotlist.testing import postgres as pg_testing

    try:
        cluster = pg_testing.start_cluster(fsync=False)
    except pg_testing.PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        with open(cluster.root / "data" / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\nwal_writer_delay = 10000ms\nwal_writer_flush_after = 0\n")
        cluster.stop()
        cluster.start()
        url = cluster.create_database()
        upgrade(url)
        data_dir = tmp_path / "data"
        first = PgAccessLogWriter(url, data_dir, synchronous=True)  # key, identity: durable
        first.close()
        dead = Journal(data_dir)
        dead.sync()
        dead.write([_fields(i) for i in range(3)])
        dead.sync()
        _die(dead)
        writer = PgAccessLogWriter(url, data_dir)
        LoopAppends(writer)  # the recovery; then PostgreSQL crashes
        assert not dead.path.exists(), "the dead server's journal was not scrubbed"
        cluster.ctl("stop", "-m", "immediate", "-w")
        cluster.start()
        assert _logged(url) == [f"plate 7JRN{i:03d}" for i in range(3)]
    finally:
        cluster.remove()
