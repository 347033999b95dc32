"""One ``https://`` source's connection to its site: the standard library's ``http.client``.

``http.client`` parses every response (status line, headers, ``Content-Length`` and
chunked framing); the body is read with large ``readinto`` calls, which its buffered
socket reader fills in C, TLS record after TLS record, straight into the caller's buffer.
That makes receiving the body cost about what ``curl`` spends (a client that hands the
body over one TLS record at a time through Python code spends twice that:
docs/benchmarks.md, "The HTTPS source").

The connection is opened explicitly, so that the server's key is checked against
``tls_pin`` right after the handshake, before any request (and any credential) is sent
on it: every response then comes over a checked connection. Through a proxy, the TLS
runs end to end inside a ``CONNECT`` tunnel. ``connect_timeout_s`` bounds the TCP
connection, the tunnel and the handshake; ``read_timeout_s`` each read after that. A
connection is kept for the next file while its last response was read to the end, and
dropped otherwise. What goes wrong is raised as the standard library raises it, except
while connecting (:class:`Unreached`, :class:`TunnelRefused`), so that
:mod:`hotlist.sources.https_failures` can tell a site never reached from a connection
that dropped.
"""

from __future__ import annotations

import base64
import http.client
import re
import select
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from hotlist.config import SourceConfig
from hotlist.sources import FetchError, FetchFailure
from hotlist.sources.https_tls import check_pin

_TUNNEL_REFUSED = re.compile(r"Tunnel connection failed: (\d{3})\b ?(.*)")
#: What a request target may carry as it is (RFC 3986 pchar, "/" and "%" of an escape).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class Unreached(Exception):
    """The site could not be connected to: TCP, the proxy's tunnel or the TLS handshake."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class TunnelRefused(Exception):
    """The proxy answered ``CONNECT`` with a status other than 200."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status = status


class BadRequest(Exception):
    """A request that cannot be sent as given (a header value with a line break)."""


class _Headers:
    """A response's headers: one value (``get``) or every value (``get_list``) of a name."""

    def __init__(self, message: http.client.HTTPMessage) -> None:
        self._message = message

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._message.get(key, default)

    def get_list(self, key: str) -> list[str]:
        return self._message.get_all(key) or []


class Answer:
    """A response: status, headers, and its body read into the caller's buffer."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.reason_phrase = response.reason
        self.headers = _Headers(response.headers)

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from the body; 0 at its end; a body cut short raises."""
        n = self._response.readinto(buffer)
        if n == 0 and self._response.length:  # EOF before Content-Length was reached
            raise http.client.IncompleteRead(b"", self._response.length)
        return n

    @property
    def finished(self) -> bool:
        return self._response.isclosed()


class _TlsConnection(http.client.HTTPConnection):
    """HTTP over TLS to ``host``: directly, or inside a tunnel when ``set_tunnel`` was called."""

    default_port = 443

    def __init__(
        self, address: tuple[str, int], host: str, context: ssl.SSLContext, timeouts: SourceConfig
    ) -> None:
        super().__init__(address[0], address[1], timeout=timeouts.connect_timeout_s)
        self._server_host = host
        self._tls = context
        self._read_timeout_s = timeouts.read_timeout_s

    def connect(self) -> None:
        try:
            super().connect()  # TCP, and CONNECT through the proxy when there is one
        except OSError as exc:
            self.close()
            refused = _TUNNEL_REFUSED.match(str(exc)) if exc.errno is None else None
            if refused is not None:
                raise TunnelRefused(int(refused[1]), refused[2]) from None
            raise Unreached(exc) from exc
        try:
            self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_host)
        except OSError as exc:
            self.close()
            raise Unreached(exc) from exc
        self.sock.settimeout(self._read_timeout_s)

    def peer_certificate(self) -> bytes | None:
        return self.sock.getpeercert(True) if isinstance(self.sock, ssl.SSLSocket) else None

    def idle_and_open(self) -> bool:
        """A kept connection the server has not closed (nothing readable while idle)."""
        if self.sock is None:
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        return not readable


@dataclass(frozen=True)
class Site:
    """Where the connection goes: the site's host and port, and the proxy if any."""

    host: str
    port: int
    proxy: str | None


class Connection:
    """Requests to one site, over one kept connection whose key was checked."""

    def __init__(
        self,
        source: SourceConfig,
        context: ssl.SSLContext,
        site: Site,
        authorization: str | None,
    ) -> None:
        self._source = source
        self._site = site
        self._headers = {"Accept-Encoding": "identity", "User-Agent": "hotlist"}
        if authorization is not None:
            self._headers["Authorization"] = authorization
        if site.proxy is None:
            self._conn = _TlsConnection((site.host, site.port), site.host, context, source)
        else:
            proxy = urlsplit(site.proxy)
            if proxy.scheme != "http":
                raise FetchError(
                    FetchFailure.CONFIG,
                    f"proxy {proxy.scheme}://{proxy.hostname}:{proxy.port or ''}: hotlist"
                    " reaches a proxy over plain http:// and asks it for a CONNECT tunnel, which"
                    " carries the TLS to the site end to end; name it http://host:port",
                )
            address = (proxy.hostname or "", proxy.port or 80)
            self._conn = _TlsConnection(address, site.host, context, source)
            self._conn.set_tunnel(site.host, site.port, headers=_proxy_headers(site.proxy))

    def close(self) -> None:
        self._conn.close()

    def cipher(self) -> tuple[str, str]:
        """The TLS version and cipher suite of the open connection (for the bench)."""
        sock = self._conn.sock
        found = sock.cipher() if isinstance(sock, ssl.SSLSocket) else None
        return (found[1], found[0]) if found else ("", "")

    @contextmanager
    def get(self, url: str, headers: dict[str, str]) -> Iterator[Answer]:
        """GET ``url`` (on this site); the connection is kept if the body was read to its end."""
        parts = urlsplit(url)
        target = quote(parts.path or "/", safe=_PATH_SAFE)
        if parts.query:
            target += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
        answer: Answer | None = None
        try:
            if not self._conn.idle_and_open():
                self._conn.close()
                self._conn.connect()
                check_pin(self._conn.peer_certificate(), self._source, *self._address())
            try:
                self._conn.putrequest("GET", target, skip_accept_encoding=True)
                for name, value in (self._headers | headers).items():
                    self._conn.putheader(name, value)
            except (ValueError, http.client.InvalidURL):
                raise BadRequest from None  # its text would quote the value: maybe a secret
            self._conn.endheaders()
            answer = Answer(self._conn.getresponse())
            yield answer
        finally:
            if answer is None or not answer.finished:
                self._conn.close()

    def _address(self) -> tuple[str, int]:
        return self._site.host, self._site.port


def _proxy_headers(proxy: str) -> dict[str, str]:
    """``Proxy-Authorization`` for a proxy URL with a user (HTTPS_PROXY); else none."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
