"""``[serve] database_url`` in the forms libpq accepts besides ``user@host:port/db``: a
list of hosts (a primary and its standby, ``target_session_attrs=read-write``), a unix
socket directory (``?host=/var/run/postgresql``), and a password slipped into the query
(``?password=``), which the configuration file must not hold any more than in the
userinfo. Real PostgreSQL, real ``hotlist serve``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hotlist.config import ConfigError, load_settings
from hotlist.pg import DatabaseUnavailable, connect, where
from tests.builders import Drop
from tests.pg_server import Cluster
from tests.serving import server_process
from tests.test_pg_consumers import _cli, _lookup, _publish, _write_config


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_list_of_hosts_is_served_and_named(
    postgres: Cluster, pg_url: str, tmp_path: Path, drop: Drop
) -> None:
    dead = _dead_port()
    database = pg_url.rsplit("/", 1)[1]
    url = (
        f"postgresql://postgres@127.0.0.1:{dead},127.0.0.1:{postgres.port}/{database}"
        "?target_session_attrs=read-write"
    )
    assert where(url) == f"127.0.0.1:{dead},127.0.0.1:{postgres.port}/{database}"
    config = _write_config(tmp_path, "data", url, drop)
    _cli("db", "upgrade", "-c", str(config))
    _publish(config, drop)
    key = _cli("consumers", "add", "car-7", "--agency-ori", "CA0190000", "--agency-name",
               "PD", "--agency-kind", "ca-local", "-c", str(config)).strip()  # fmt: skip
    with server_process(config, tmp_path) as server:
        assert _lookup(server, key).status_code == 200


def test_a_unix_socket_url_is_named_by_its_directory(postgres: Cluster, tmp_path: Path) -> None:
    good = f"postgresql://postgres@/postgres?host={postgres.root}&port={postgres.port}"
    with connect(good) as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
    missing = tmp_path / "no-socket-here"
    bad = f"postgresql:///postgres?host={missing}"
    assert where(bad) == f"{missing}:5432/postgres"
    with pytest.raises(DatabaseUnavailable, match=f"PostgreSQL at {missing}:5432/postgres"):
        connect(bad)


def test_a_password_in_the_query_is_refused_too(tmp_path: Path) -> None:
    config = tmp_path / "hotlist.toml"
    config.write_text(
        'data_dir = "data"\n[serve]\n'
        'database_url = "postgresql://hotlist@db/serving?sslmode=require&password=s3cret"\n'
    )
    with pytest.raises(ConfigError, match="PGPASSWORD") as raised:
        load_settings(config, environ={})
    assert "s3cret" not in str(raised.value)
