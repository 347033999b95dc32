"""The access log in PostgreSQL when a writer's connection breaks after the server
committed its append but before the answer reached it, while another writer appends
meanwhile: the record is written once, not lost and not twice.

The break is real: the writer reaches PostgreSQL through a TCP relay that lets the append
through, swallows the server's answer, lets a second writer append, and closes the
connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from hotlist import audit
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.audit.pg_verify import verify_pg
from hotlist.pg.migrate import upgrade

OURS = audit.AccessRecord("officer-a", "CA0190000", "patrol", "GET /v1/hotlist", "granted", "api")
THEIRS = audit.AccessRecord("officer-b", "CA0190000", "patrol", "GET /v1/hotlist", "granted", "api")


class CutRelay:
    """Relays TCP to PostgreSQL; once armed, the next answer the server sends on a
    connection is swallowed, ``on_cut`` runs, and the connection is closed."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.armed = threading.Event()
        self.cuts = 0
        self.on_cut: Callable[[], None] = lambda: None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            sent = threading.Event()  # the client sent something since the relay was armed
            threading.Thread(target=self._up, args=(client, server, sent), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, sent), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, sent: threading.Event) -> None:
        with _quiet():
            while data := client.recv(65536):
                if self.armed.is_set():
                    sent.set()
                server.sendall(data)

    def _down(self, server: socket.socket, client: socket.socket, sent: threading.Event) -> None:
        with _quiet():
            while data := server.recv(65536):
                if sent.is_set() and self.armed.is_set():
                    self.armed.clear()
                    self.on_cut()
                    self.cuts += 1
                    for sock in (client, server):
                        sock.shutdown(socket.SHUT_RDWR)
                        sock.close()
                    return
                client.sendall(data)

    def close(self) -> None:
        self.listener.close()


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


@pytest.fixture
def url(pg_url: str) -> str:
    upgrade(pg_url)
    return pg_url


@pytest.fixture
def relay(url: str) -> Iterator[CutRelay]:
    port = int(url.split(":")[-1].split("/")[0])
    found = CutRelay(port)
    yield found
    found.close()


def _users(url: str) -> list[str]:
    with psycopg.connect(url) as con:
        return [str(r[0]) for r in con.execute('SELECT "user" FROM access_log ORDER BY seq')]


def _head_seq(url: str) -> int:
    with psycopg.connect(url) as con:
        row = con.execute("SELECT seq FROM access_log_head").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("synchronous", [True, False])
def test_an_append_committed_before_its_connection_broke_is_written_once(
    url: str, relay: CutRelay, tmp_path: Path, synchronous: bool
) -> None:
    other = PgAccessLogWriter(url, tmp_path, synchronous=True)
    other.append(THEIRS)  # the key, its identity and the first anchor are in place
    via_relay = url.replace(url.split("@")[1].split("/")[0], f"127.0.0.1:{relay.port}")
    writer = PgAccessLogWriter(via_relay, tmp_path, synchronous=synchronous)

    def another_writer_appends() -> None:
        deadline = time.monotonic() + 10
        while _head_seq(url) < 2:  # the swallowed append did commit
            assert time.monotonic() < deadline
            time.sleep(0.01)
        other.append(THEIRS)

    relay.on_cut = another_writer_appends
    relay.armed.set()
    written = writer.append(OURS)
    writer.close()
    other.close()
    assert relay.cuts == 1
    assert _users(url) == ["officer-b", "officer-a", "officer-b"]
    assert written["seq"] == 2
    check = verify_pg(url, tmp_path)
    assert check.ok and check.records == 3, check.problems
