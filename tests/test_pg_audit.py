"""The access log in PostgreSQL: one chain however many writers append at once (threads
with their own connections, processes), every kind of tampering named by verify, and a
writer with another key refused (real PostgreSQL)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from hotlist import audit
from hotlist.audit.keys import key_path
from hotlist.audit.pg import SEGMENT, PgAccessLogWriter
from hotlist.audit.pg_verify import verify_pg
from hotlist.config import ConfigError
from hotlist.pg.migrate import upgrade

RECORD = audit.AccessRecord("officer1", "CA0190000", "patrol", "plate 7ABC123", "granted", "api")


@pytest.fixture
def url(pg_url: str) -> str:
    upgrade(pg_url)
    return pg_url


def _count(url: str) -> int:
    with psycopg.connect(url) as con:
        row = con.execute("SELECT count(*) FROM access_log").fetchone()
    assert row is not None
    return int(row[0])


def _sql(url: str, sql: str, params: tuple[object, ...] = ()) -> None:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(sql.encode(), params)


def test_two_writers_in_threads_make_one_intact_chain(url: str, tmp_path: Path) -> None:
    first, second = tmp_path / "host1", tmp_path / "host2"
    PgAccessLogWriter(url, first).close()  # the first host's key, recorded
    key_path(second).parent.mkdir(parents=True)
    shutil.copy(key_path(first), key_path(second))  # copied to the second host
    writers = [PgAccessLogWriter(url, first), PgAccessLogWriter(url, second)]
    start = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def run(writer: PgAccessLogWriter) -> None:
        try:
            start.wait()
            for i in range(300):
                if i % 10 == 0:
                    writer.append_many([RECORD] * 5)
                else:
                    writer.append(RECORD)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in writers:
        writer.close()
    assert not errors
    assert sum(w.retries for w in writers) > 0  # they did contend
    check = verify_pg(url, first)
    assert check.ok, check.problems
    assert check.records == _count(url) == 2 * (270 + 30 * 5)


def test_two_processes_append_at_once_into_one_chain(url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    PgAccessLogWriter(url, data_dir).close()
    go = tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "from hotlist import audit\n"
        "from hotlist.audit.pg import PgAccessLogWriter\n"
        "w = PgAccessLogWriter(sys.argv[1], pathlib.Path(sys.argv[2]))\n"
        "while not pathlib.Path(sys.argv[3]).exists(): time.sleep(0.01)\n"
        "r = audit.AccessRecord('u', 'CA0190000', 'patrol', 'plate X', 'granted', 'api')\n"
        "for i in range(400): w.append(r)\n"
        "w.close()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, url, str(data_dir), str(go)])
        for _ in range(2)
    ]
    time.sleep(1.0)  # both connected and waiting
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    check = verify_pg(url, data_dir)
    assert check.ok, check.problems
    assert check.records == 800


def test_a_writer_whose_connection_was_cut_reconnects_and_keeps_the_chain(
    url: str, tmp_path: Path
) -> None:
    writer = PgAccessLogWriter(url, tmp_path)
    writer.append(RECORD)
    _sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
              " WHERE application_name = 'hotlist' AND pid <> pg_backend_pid()")  # fmt: skip
    writer.append(RECORD)
    writer.append_many([RECORD, RECORD])
    writer.close()
    check = verify_pg(url, tmp_path)
    assert check.ok, check.problems
    assert check.records == 4


def test_sync_makes_the_appends_durable(url: str, tmp_path: Path) -> None:
    writer = PgAccessLogWriter(url, tmp_path)  # appends commit without waiting for the flush
    with psycopg.connect(url, autocommit=True) as con:
        writer.append_many([RECORD] * 50)
        row = con.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        assert row is not None
        written = row[0]
        writer.sync()
        flushed = con.execute("SELECT pg_current_wal_flush_lsn() >= %s", (written,)).fetchone()
    writer.close()
    assert flushed == (True,)


def _chain(url: str, data_dir: Path, n: int = 15, anchored_at: int = 10) -> None:
    writer = PgAccessLogWriter(url, data_dir)
    for i in range(1, n + 1):
        writer.append(
            audit.AccessRecord("u", "CA0190000", "patrol", f"plate {i}", "granted", "api")
        )
        if i == anchored_at:
            writer.sync()
            audit.pg.anchor(url, data_dir, "test")
    writer.close()


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        ("UPDATE access_log SET data_element = 'plate 0' WHERE seq = 5",
         "record 5: record was altered"),
        ("DELETE FROM access_log WHERE seq = 5", "record 6: chain broken"),
        ("UPDATE access_log SET seq = seq + 100 WHERE seq = 15", "record 115: record was altered"),
        ("DELETE FROM access_log WHERE seq > 12", "the head names record 15, but the log ends"
         " at record 12"),
        ("DELETE FROM access_log WHERE seq > 7; UPDATE access_log_head SET (seq, hash) ="
         " (SELECT seq, hash FROM access_log WHERE seq = 7)",
         "log truncated: record 10 of access_log"),
        ("INSERT INTO access_log_anchors (at, segment, seq, hmac, kind, place, mac) VALUES"
         " ('2026-01-01T00:00:00Z', 'access_log', 3, 'ab', 'anchor', 'hourly', 'cd')",
         "anchor in database is not genuine"),
        ("UPDATE access_log_anchors SET seq = 11 WHERE place = 'test'",
         "anchor in database is not genuine"),
        ("DELETE FROM access_log_head", "the head row"),
    ],
)  # fmt: skip
def test_verify_names_each_kind_of_tampering(
    url: str, tmp_path: Path, tamper: str, named: str
) -> None:
    _chain(url, tmp_path)
    assert verify_pg(url, tmp_path).ok
    _sql(url, tamper)
    check = verify_pg(url, tmp_path)
    assert not check.ok
    assert any(named in p for p in check.problems), check.problems


def test_a_writer_with_another_key_is_refused(url: str, tmp_path: Path) -> None:
    first, other = tmp_path / "host1", tmp_path / "host2"
    writer = PgAccessLogWriter(url, first)
    writer.append(RECORD)
    writer.close()
    other_key = audit.keys.load_key(other)  # a key of its own: another host's first use
    with pytest.raises(ConfigError, match="is not the key the access log in PostgreSQL"):
        PgAccessLogWriter(url, other)
    assert key_path(other).read_bytes() == other_key
    check = verify_pg(url, other)
    assert not check.ok and "not the key the log is chained with" in str(check.problem)
    assert _count(url) == 1


def test_no_key_is_made_when_the_database_holds_a_chain(url: str, tmp_path: Path) -> None:
    PgAccessLogWriter(url, tmp_path / "host1").close()  # records the key's identity only
    with pytest.raises(ConfigError, match=r"copy secrets/audit-hmac\.key"):
        PgAccessLogWriter(url, tmp_path / "host2")
    assert not key_path(tmp_path / "host2").exists()


def test_hourly_anchors_go_to_the_database(url: str, tmp_path: Path) -> None:
    import datetime as dt

    writer = PgAccessLogWriter(url, tmp_path, anchor_every=dt.timedelta(hours=1))
    t0 = dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC)
    for minutes in (0, 30, 61, 62, 125):
        writer.append(RECORD, at=t0 + dt.timedelta(minutes=minutes))
    writer.close()
    with psycopg.connect(url) as con:
        rows = con.execute(
            "SELECT seq, segment, kind FROM access_log_anchors ORDER BY id"
        ).fetchall()
    assert rows == [(1, SEGMENT, "anchor"), (3, SEGMENT, "anchor"), (5, SEGMENT, "anchor")]
    check = verify_pg(url, tmp_path)
    assert check.ok and check.anchors == 3


def test_an_identical_record_from_a_writer_a_step_behind_is_not_lost(
    url: str, tmp_path: Path
) -> None:
    """Two replicas log the same access at the same microsecond from the same head: the
    same seq, prev and HMAC. The second is still written, after the first."""
    import datetime as dt

    first = PgAccessLogWriter(url, tmp_path)
    second = PgAccessLogWriter(url, tmp_path)  # both start at the empty head
    at = dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC)
    one = first.append(RECORD, at=at)
    two = second.append(RECORD, at=at)
    first.close()
    second.close()
    assert (one["seq"], two["seq"]) == (1, 2)
    assert second.retries == 1
    check = verify_pg(url, tmp_path)
    assert check.ok and check.records == 2, check.problems


def test_verify_without_the_key_fails_once_anything_was_written(url: str, tmp_path: Path) -> None:
    assert verify_pg(url, tmp_path / "nothing yet").ok  # an empty log, no key: nothing to check
    writer = PgAccessLogWriter(url, tmp_path / "host1")
    writer.append(RECORD)
    writer.close()
    check = verify_pg(url, tmp_path / "host2")
    assert not check.ok and "audit key (secrets/audit-hmac.key) is missing" in str(check.problem)
    assert not key_path(tmp_path / "host2").exists()  # verify never makes one
