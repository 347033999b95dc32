"""A throwaway PostgreSQL cluster on a free loopback port, for tests and benchmarks of the
shared serving state (``[serve] database_url``); never used in production.

``initdb`` refuses to run as root, so as root the cluster is made and run as the
``postgres`` user (``runuser``); as anyone else, as that user. Tests run it with
``fsync = off`` (nothing to keep after the session, and faster); a benchmark asks for
``fsync=True``, so that a commit costs what it costs on a real server.
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
from dataclasses import dataclass
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
_START_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    """This machine cannot run a throwaway cluster; the message says what to install."""


def server_program(name: str) -> str | None:
    """A PostgreSQL server program (``initdb``, ``pg_ctl``): the newest installed version's,
    else the one on PATH; None when there is none."""
    for folder in BIN_DIRS:
        if (folder / name).is_file():
            return str(folder / name)
    return shutil.which(name)


def postgres_unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    if server_program("initdb") is None or server_program("pg_ctl") is None:
        return "PostgreSQL's server (initdb, pg_ctl) is not installed"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster: its directory (data, socket, log), port, and the command prefix
    that runs its programs as the user who owns it."""

    root: Path
    port: int
    run_as: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def ctl(self, *args: str) -> None:
        pg_ctl = server_program("pg_ctl")
        if pg_ctl is None:
            raise PostgresUnavailable("pg_ctl is not installed")
        subprocess.run(
            [*self.run_as, pg_ctl, "-D", str(self.root / "data"), *args],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast", "-w")

    def start(self) -> None:
        self.ctl("start", "-w", "-l", str(self.root / "server.log"))

    def postmaster_pid(self) -> int:
        """The cluster's postmaster (first line of ``postmaster.pid``): the parent of every
        backend, so its children are all the cluster's processes."""
        return int((self.root / "data" / "postmaster.pid").read_text().split()[0])

    def remove(self) -> None:
        """Stop the cluster and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(*, fsync: bool = False) -> Cluster:
    """Make and start a cluster in a new temporary directory (trust authentication,
    loopback only); :class:`PostgresUnavailable` when the server programs are missing."""
    reason = postgres_unavailable_reason()
    initdb = server_program("initdb")
    if reason is not None or initdb is None:
        raise PostgresUnavailable(reason or "initdb is not installed")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="hotlist-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*run_as, initdb, "-D", str(root / "data"), "-A", "trust", "-U", "postgres",
         *([] if fsync else ["--no-sync"]), "-E", "UTF8", "--locale", "C"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    conf = root / "data" / "postgresql.conf"
    with open(conf, "a", encoding="utf-8") as fh:
        fh.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{root}'\nfsync = {'on' if fsync else 'off'}\n"
            "max_connections = 200\n"
        )
    cluster = Cluster(root, port, run_as)
    cluster.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start on port {port}") from None
            time.sleep(0.1)
    return cluster
