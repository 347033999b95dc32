"""A real TLS web site and a real CONNECT proxy on loopback, for the HTTPS source's tests.

:class:`Site` is the embedded HTTPS server (``hotlist.sources.https_server``: a CA and a
certificate generated at test time) with the faults a real site shows: a connection cut
after some bytes of a body, a login page served with ``200``, credentials required, and a
log of the requests it answered. :class:`ConnectProxy` tunnels ``CONNECT host:port``
and records each target it was asked for.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotlist.sources.https_server import (
    CA,
    HOST,
    HttpsServer,
    Issued,
    StaticHandler,
    issue,
    make_ca,
    running,
    server_context,
)


@dataclass
class Faults:
    """What the site does wrong, set by a test before a fetch."""

    #: path -> bytes of body sent before the connection is cut (once per entry).
    cut_after: dict[str, int] = field(default_factory=dict)
    #: path -> (Content-Type, body) served with 200 instead of the file.
    pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    #: path -> a status the site answers with (no body).
    status: dict[str, int] = field(default_factory=dict)
    #: path -> a status answered once, then the file.
    status_once: dict[str, int] = field(default_factory=dict)
    #: The Authorization header every request must carry (401 otherwise).
    authorization: str | None = None
    #: Answer every GET with the whole file, whatever the conditional headers say.
    ignore_conditionals: bool = False
    #: (method, path, headers) of each request answered.
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


class _FaultyHandler(StaticHandler):
    server: _FaultyServer

    def serve(self, *, body: bool) -> None:
        faults = self.server.faults
        faults.requests.append((self.command, self.path, dict(self.headers.items())))
        if faults.authorization is not None and (
            self.headers.get("Authorization") != faults.authorization
        ):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="CLEW"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = faults.status.get(self.path) or faults.status_once.pop(self.path, None)
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in faults.pages:
            content_type, page = faults.pages[self.path]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if faults.ignore_conditionals:
            for name in ("If-None-Match", "If-Modified-Since"):
                del self.headers[name]
        super().serve(body=body)

    def send_body(self, path: Path, start: int, end: int) -> None:
        cut = self.server.faults.cut_after.pop(self.path, None)
        if cut is None:
            super().send_body(path, start, end)
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            self.wfile.write(fh.read(cut))
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


class _FaultyServer(HttpsServer):
    def __init__(self, root: Path, cert: Issued, client_ca: Path | None) -> None:
        self.faults = Faults()
        super().__init__(root, server_context(cert, client_ca), _FaultyHandler)


@dataclass
class Site:
    """A running HTTPS site serving ``root``; ``ca`` issued its certificate."""

    root: Path
    ca: CA
    cert: Issued
    server: _FaultyServer

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.server.port}/"

    @property
    def faults(self) -> Faults:
        return self.server.faults

    def get_paths(self) -> list[str]:
        return [path for method, path, _ in self.faults.requests if method == "GET"]


@contextlib.contextmanager
def running_site(
    root: Path, pki: Path, *, ca: CA | None = None, client_ca: Path | None = None
) -> Iterator[Site]:
    """Serve ``root`` over HTTPS with a certificate from ``ca`` (a new CA by default)."""
    ca = ca or make_ca(pki, "test site CA")
    cert = issue(ca, pki, f"site-{len(list(pki.glob('site-*.pem')))}")
    server = _FaultyServer(root, cert, client_ca)
    with running(server):
        yield Site(root, ca, cert, server)


class _Tunnel(socketserver.BaseRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            data = self.request.recv(4096)
            if not data:
                return
            head += data
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        self.server.seen.append(f"{method} {target}")
        if self.server.refuse is not None:
            self.request.sendall(
                b"HTTP/1.1 " + self.server.refuse + b"\r\nContent-Length: 0\r\n\r\n"
            )
            return
        if method != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            self._pipe(self.request, upstream)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while True:
            readable, _, _ = select.select(list(peers), [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(1 << 16)
                if not data:
                    return
                peers[sock].sendall(data)


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy that only tunnels (CONNECT), recording each request line it got."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        #: A status line to answer every request with instead of tunnelling.
        self.refuse: bytes | None = None
        super().__init__((HOST, 0), _Tunnel)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


@contextlib.contextmanager
def running_proxy() -> Iterator[ConnectProxy]:
    proxy = ConnectProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)
