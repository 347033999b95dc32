"""The access log's key on a host that writes the log in PostgreSQL: a copy that other
users of the host can read (``scp`` without ``-p``, ``cp`` under a 022 umask) is refused,
naming the file and the remedy, as TLS and SFTP keys are; and two hosts starting at once
on an empty database with keys of their own record one identity, the other host refused."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from hotlist import audit
from hotlist.audit.keys import key_path
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.audit.pg_verify import verify_pg
from hotlist.config import ConfigError
from hotlist.pg.migrate import upgrade

RECORD = audit.AccessRecord("officer1", "CA0190000", "patrol", "GET /v1/hotlist", "granted", "api")


@pytest.fixture
def url(pg_url: str) -> str:
    upgrade(pg_url)
    return pg_url


def test_a_key_copied_readable_by_others_is_refused(url: str, tmp_path: Path) -> None:
    first, second = tmp_path / "host1", tmp_path / "host2"
    PgAccessLogWriter(url, first, synchronous=True).close()
    key_path(second).parent.mkdir(parents=True, mode=0o700)
    shutil.copyfile(key_path(first), key_path(second))
    key_path(second).chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by other users") as refused:
        PgAccessLogWriter(url, second, synchronous=True)
    assert f"chmod 600 {key_path(second)}" in str(refused.value)
    key_path(second).chmod(0o600)
    writer = PgAccessLogWriter(url, second, synchronous=True)
    writer.append(RECORD)
    writer.close()
    assert verify_pg(url, first).ok


def test_two_hosts_first_at_once_with_keys_of_their_own_record_one_identity(
    url: str, tmp_path: Path
) -> None:
    hosts = [tmp_path / f"host{i}" for i in range(4)]
    start = threading.Barrier(len(hosts))
    outcomes: dict[Path, object] = {}

    def first_use(data_dir: Path) -> None:
        start.wait()
        try:
            writer = PgAccessLogWriter(url, data_dir, synchronous=True)
            writer.append(RECORD)
            writer.close()
            outcomes[data_dir] = "wrote"
        except ConfigError as exc:
            outcomes[data_dir] = exc

    threads = [threading.Thread(target=first_use, args=(h,)) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [h for h, o in outcomes.items() if o == "wrote"]
    assert len(winners) == 1, outcomes
    refusals = [str(o) for h, o in outcomes.items() if h not in winners]
    assert all("is not the key" in r or "is missing" in r for r in refusals), refusals
    check = verify_pg(url, winners[0])
    assert check.ok and check.records == 1, check.problems


def test_a_log_whose_key_identity_was_emptied_takes_no_new_key(url: str, tmp_path: Path) -> None:
    """Records, and no identity beside them (someone emptied ``access_log_key``): a
    writer is refused, rather than record its key's identity as the log's (had it another
    key, that would fork the chain), until the log is verified."""
    writer = PgAccessLogWriter(url, tmp_path / "first", synchronous=True)
    writer.append(RECORD)
    writer.close()
    with psycopg.connect(url) as con:
        con.execute("DELETE FROM access_log_key")
    with pytest.raises(ConfigError, match="holds records but no key identity"):
        PgAccessLogWriter(url, tmp_path / "first", synchronous=True)
    with psycopg.connect(url) as con:
        assert con.execute("SELECT count(*) FROM access_log_key").fetchone() == (0,)
