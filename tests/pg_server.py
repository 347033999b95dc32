"""A throwaway PostgreSQL cluster on a free loopback port, for tests of the shared
serving state (``[serve] database_url``).

``initdb`` refuses to run as root, so as root the cluster is made and run as the
``postgres`` user (``runuser``); as anyone else, as that user. One cluster per test
session (``postgres``); each test that asks for ``pg_url`` gets a database of its own.
Skips when PostgreSQL's server programs are not installed (a failure under CI=true).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _bin(name: str) -> str | None:
    for folder in BIN_DIRS:
        if (folder / name).is_file():
            return str(folder / name)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    port: int
    run_as: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def ctl(self, *args: str) -> None:
        pg_ctl = _bin("pg_ctl")
        assert pg_ctl is not None
        subprocess.run(
            [*self.run_as, pg_ctl, "-D", str(self.root / "data"), *args],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast", "-w")

    def start(self) -> None:
        self.ctl("start", "-w", "-l", str(self.root / "server.log"))


def start_cluster() -> Cluster:
    initdb = _bin("initdb")
    if initdb is None or _bin("pg_ctl") is None:
        pytest.skip("PostgreSQL's server (initdb, pg_ctl) is not installed")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="hotlist-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [*run_as, initdb, "-D", str(root / "data"), "-A", "trust", "-U", "postgres",
         "--no-sync", "-E", "UTF8", "--locale", "C"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    conf = root / "data" / "postgresql.conf"
    with open(conf, "a", encoding="utf-8") as fh:
        fh.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{root}'\nfsync = off\nmax_connections = 200\n"
        )
    cluster = Cluster(root, port, run_as)
    cluster.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start on port {port}") from None
            time.sleep(0.1)
    return cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: Cluster) -> str:
    """A new, empty database of the session's cluster."""
    return postgres.create_database()
