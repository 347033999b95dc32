"""The server's appends to the access log in PostgreSQL (``LoopAppends``) when a
connection breaks while its statement waits in PostgreSQL: the backend does not notice
its client gone and finishes the statement whenever it can, after the server asked
whether it landed and sent the records again. Each record is in the log once.

The break is real: the server reaches PostgreSQL through a TCP relay that closes every
connection on demand; the statement waits on the head row's lock, held by a test
connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hotlist import audit
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.audit.pg_loop import LoopAppends
from hotlist.pg.migrate import upgrade
from tests.pg_server import waiting_on_the_head


class Relay:
    """Relays TCP to PostgreSQL; :meth:`cut` closes every connection open through it."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            return

    def cut(self) -> None:
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.open = []

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def url(pg_url: str) -> str:
    upgrade(pg_url)
    return pg_url


@pytest.fixture
def relay(url: str) -> Iterator[Relay]:
    found = Relay(int(url.split(":")[-1].split("/")[0]))
    yield found
    found.close()


def _record(i: int) -> audit.AccessRecord:
    return audit.AccessRecord("officer1", "CA0190000", "patrol", f"request {i}", "granted", "api")


def test_a_statement_that_lands_after_its_connection_broke_is_not_sent_again(
    url: str, relay: Relay, tmp_path: Path
) -> None:
    """The statement waits on the head row's lock; its connection breaks; the server
    reconnects, finds the record not there, and sends it again (that statement waits
    too); the lock goes: the first statement lands, the second finds the head moved. The
    record is in the log once, the chain intact."""
    via_relay = url.replace(url.split("@")[1].split("/")[0], f"127.0.0.1:{relay.port}")
    writer = PgAccessLogWriter(via_relay, tmp_path)
    appends = LoopAppends(writer)

    async def wait_for(what: object, enough: int) -> None:
        deadline = time.monotonic() + 10
        while waiting_on_the_head(url) < enough:
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.02)

    async def main() -> None:
        await appends.append([_record(0)])
        while not list(audit.pg.records(url)):
            await asyncio.sleep(0.01)
        with psycopg.connect(url) as blocker:
            blocker.execute("SELECT * FROM access_log_head FOR UPDATE")
            await appends.append([_record(1)])
            await wait_for("the statement never waited", 1)
            relay.cut()
            await wait_for("the statement was not sent again", 2)
            blocker.rollback()
        deadline = time.monotonic() + 10
        while appends._waiting:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await appends.aclose()

    asyncio.run(main())
    writer.close()
    assert [r["data_element"] for r in audit.pg.records(url)] == ["request 0", "request 1"]
    assert audit.pg_verify.verify_pg(url, tmp_path).ok
