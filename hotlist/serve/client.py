"""The reference client: keep a local copy of the hotlist in sync, with deltas and acks.

What a patrol integration runs (``hotlist pull``, or ``hotlist pull --follow`` to keep
following). The copy (:mod:`hotlist.serve.copies`) is ``OUT/hotlist.lines`` or
``OUT/hotlist.parquet`` (``--copy-format``; by default the format the directory already
holds, lines for a new one), with ``OUT/state.json`` naming its version; each pull asks
for the delta since that version (or gets a full version when too far behind), applies removals and upserts, then acknowledges the version so the
deletion reports can count this copy as purged. Whatever held a removed record is
overwritten before the acknowledgement: the replaced copy, or the record's own bytes.

Following (:class:`Follower`) long-polls the server (``wait``), so a new version reaches
the copy as soon as it is published; it reconnects with backoff when the server is
away, and stops between steps when asked.

The server is reached over verified TLS (:class:`Transport`); plain ``http://`` only to
loopback, unless the operator allows it (:mod:`hotlist.serve.tls`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl

from hotlist.config import ConfigError
from hotlist.serve import tls
from hotlist.serve.copies import Copy, CopyUnreadable, ParquetCopy, UnknownCopyFormat, format_in
from hotlist.serve.copy_lines import LinesCopy

log = logging.getLogger("hotlist.pull")

#: Seconds a following client asks the server to wait for a newer version (at most 60).
FOLLOW_WAIT_S = 55
#: The copy formats a client keeps (``--copy-format``).
COPY_FORMATS: dict[str, type[Copy]] = {"parquet": ParquetCopy, "lines": LinesCopy}
#: Backoff between failed attempts: doubling from the first, capped at the last.
BACKOFF_S = (1.0, 30.0)


def copy_class(out: Path, copy_format: str | None) -> type[Copy]:
    """The copy kept in ``out``: of ``copy_format``, or without one the format ``out``
    already holds (lines for a new directory: :func:`~hotlist.serve.copies.format_in`).
    A directory holding a copy of a format this client does not keep is refused either
    way: a second copy beside it would leave that one stale."""
    try:
        held = format_in(out)
    except UnknownCopyFormat as exc:
        raise PullError(str(exc)) from None
    return COPY_FORMATS[copy_format or held]


class PullError(Exception):
    """The server refused or failed; the message carries its problem detail."""


class ServerAway(PullError):
    """The server could not be reached or answered 5xx: worth trying again later."""


class FollowStopped(BaseException):
    """Raised inside a wait when the follower is asked to stop (not an error)."""


@dataclass(frozen=True)
class PullResult:
    version: int
    full: bool
    entries: int
    upserts: int
    removals: int
    applied_s: float = 0.0  # from the answer's arrival to the copy in place
    acked_s: float = 0.0  # the acknowledgement's round trip, after the apply


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{response.status_code} {body.get('title')}: {body.get('detail')}"
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"


def _refused(response: httpx.Response) -> PullError:
    if response.status_code >= 500:
        return ServerAway(_problem(response))
    return PullError(_problem(response))


def _apply(copy: Copy, response: httpx.Response) -> PullResult:
    """Apply a full version or a delta to the copy (:mod:`hotlist.serve.copies`)."""
    arrived = time.monotonic()
    version = int(response.headers["X-Hotlist-Version"])
    full = response.headers["X-Hotlist-Full"] == "true"
    try:
        if full:
            entries = upserts = copy.apply_full(response.content, version)
            removals = 0
        else:
            incoming = pl.read_parquet(io.BytesIO(response.content))
            gone = incoming.filter(pl.col("op") == "remove")["entry_id"]
            fresh = incoming.filter(pl.col("op") == "upsert").drop("op")
            entries = copy.apply_delta(gone, fresh, version)
            upserts, removals = fresh.height, gone.len()
    except CopyUnreadable as exc:  # the version, not the copy: asking again brings it again
        others = ", ".join(f for f in COPY_FORMATS if f != copy.format)
        raise PullError(
            f"version {version} cannot be held in a {copy.format} copy ({exc}); the copy"
            f" keeps the version it had. Pull with --copy-format {others}, or ask the"
            " server's operator"
        ) from None
    applied_s = time.monotonic() - arrived
    return PullResult(version, full, entries, upserts, removals, applied_s)


def _ack(http: httpx.Client, headers: dict[bytes, bytes], copy: Copy) -> None:
    """Acknowledge the copy's version. Sent again once at once when the connection was
    closed under it: after an apply longer than the server keeps an idle connection
    (uvicorn: 5 s) the kept-alive one is gone, and backing off for that would hold back
    the acknowledgement, and the deletion report's count of this copy, for nothing (an
    ack is idempotent)."""
    version = copy.version
    assert version is not None
    try:
        acked = http.post("/v1/ack", json={"version": version}, headers=headers)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        acked = http.post("/v1/ack", json={"version": version}, headers=headers)
    if acked.status_code != 200:
        raise _refused(acked)
    copy.save(version, acked=True)


def pull_once(
    http: httpx.Client,
    headers: dict[bytes, bytes],
    copy: Copy,
    wait_s: int = 0,
    waiting: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> PullResult | None:
    """One pull (waiting up to ``wait_s`` for a newer version); None when nothing is newer.
    An acknowledgement that failed last time is sent first. ``waiting`` wraps the request
    alone: applying and acknowledging are never cut short."""
    if copy.version is not None and not copy.acked:
        _ack(http, headers, copy)
    params: dict[str, str | int] = {"format": "parquet"}
    if copy.version is not None:
        params["since"] = copy.version
        if wait_s:
            params["wait"] = wait_s
    with waiting():
        response = http.get("/v1/hotlist", params=params, headers=headers)
    if response.status_code == 304:
        return None
    if response.status_code != 200:
        raise _refused(response)
    result = _apply(copy, response)
    applied = time.monotonic()
    _ack(http, headers, copy)
    return dataclasses.replace(result, acked_s=time.monotonic() - applied)


def _headers(key: str, user: str, purpose: str) -> dict[bytes, bytes]:
    # As UTF-8 bytes: httpx encodes str header values as ASCII, and a user is a name.
    return {
        b"Authorization": f"Bearer {key}".encode(),
        b"X-User": user.encode("utf-8"),
        b"X-Purpose": purpose.encode("utf-8"),
    }


@contextmanager
def _only_puller(out: Path) -> Iterator[None]:
    """One client at a time in ``out``: two would write the same temporary file."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Transport:
    """How the client reaches the server: whom it trusts (``ca_file``, else the system
    store), the certificate it presents (mutual TLS), and whether plain HTTP to a host
    other than loopback is allowed (:mod:`hotlist.serve.tls`)."""

    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    allow_plain_http: bool = False

    def client(self, server: str, timeout_s: float) -> httpx.Client:
        return httpx.Client(base_url=server, timeout=timeout_s, verify=self.context(server))

    def context(self, server: str) -> ssl.SSLContext:
        """The TLS context for ``server``; ConfigError when the transport is not allowed
        or its files cannot be used, before anything is sent."""
        refusal = None if self.allow_plain_http else tls.plain_server_refusal(server)
        if refusal is not None:
            raise ConfigError(refusal)
        given = [o for o, v in self._options() if v is not None]
        if given and not server.startswith("https://"):
            raise ConfigError(f"{', '.join(given)}: for an https:// server, not {server}")
        return tls.client_context(self.ca_file, self.client_cert, self.client_key)

    def _options(self) -> list[tuple[str, Path | None]]:
        return [
            ("--ca-file", self.ca_file),
            ("--client-cert", self.client_cert),
            ("--client-key", self.client_key),
        ]

    def refusal(self, exc: BaseException, server: str) -> PullError | None:
        """A PullError when ``exc`` is a TLS failure that trying again will not mend."""
        why = tls.tls_refusal(exc, server, self.ca_file, self.client_cert is not None)
        return None if why is None else PullError(why)


def pull(
    server: str,
    key: str,
    user: str,
    purpose: str,
    out: Path,
    timeout_s: float = 120.0,
    transport: Transport = Transport(),
    copy_format: str | None = None,
) -> PullResult:
    """Bring the copy in ``out`` up to date once (``copy_format``: see :func:`copy_class`)."""
    http = transport.client(server, timeout_s)
    try:
        with http, _only_puller(out):
            result = pull_once(
                http, _headers(key, user, purpose), copy_class(out, copy_format)(out)
            )
    except httpx.TransportError as exc:
        refused = transport.refusal(exc, server)
        if refused is not None:
            raise refused from None
        hint = tls.closed_hint(exc, server, transport.client_cert is not None)
        raise ServerAway(f"{server} could not be reached ({exc}){hint}") from None
    assert result is not None  # without wait, the server always answers with content
    return result


class Follower:
    """Keeps the copy in ``out`` following the server until :meth:`stop`.

    Each round long-polls for a version newer than the copy's, applies it, scrubs the
    copy it replaced and acknowledges. A server that is away (refused connection,
    timeout, 5xx) is tried again after a backoff that doubles up to ``BACKOFF_S[1]``; a
    refusal (401, 403, 422), a server certificate that does not verify, or a handshake
    the server refuses ends the follow with :class:`PullError`.
    """

    def __init__(
        self,
        server: str,
        key: str,
        user: str,
        purpose: str,
        out: Path,
        wait_s: int = FOLLOW_WAIT_S,
        on_pull: Callable[[PullResult], None] | None = None,
        transport: Transport = Transport(),
        copy_format: str | None = None,
    ) -> None:
        self.server, self.out, self.wait_s = server, out, wait_s
        self.copy_format = copy_format
        self.transport, self._context = transport, transport.context(server)
        self.headers = _headers(key, user, purpose)
        self.on_pull = on_pull
        self.failures = 0
        self._stop = threading.Event()
        self._interruptible = False
        self._runner: int | None = None
        self._http: httpx.Client | None = None

    def stop(self) -> None:
        """Stop after the step under way. From a signal handler of the thread that runs
        :meth:`run`, a wait for the server is cut short at once; from another thread, the
        client is closed and the wait ends at the latest when the server answers (within
        ``wait_s``)."""
        self._stop.set()
        if not self._interruptible:
            return
        if threading.get_ident() == self._runner:
            self._interruptible = False
            raise FollowStopped
        http = self._http
        if http is not None:
            http.close()

    def run(self) -> None:
        with _only_puller(self.out):
            self._run()

    def _run(self) -> None:
        # The format is read under the directory's lock, as pull() reads it: a pull that
        # changed the directory's format before this follower started is seen.
        copy = copy_class(self.out, self.copy_format)(self.out)
        delay = BACKOFF_S[0]
        self._runner = threading.get_ident()
        try:
            timeout = self.wait_s + 30.0
            with httpx.Client(base_url=self.server, timeout=timeout, verify=self._context) as http:
                self._http = http
                while not self._stop.is_set():
                    try:
                        result = self._round(http, copy)
                    except RuntimeError:  # the client closed by stop() from another thread
                        if self._stop.is_set():
                            break
                        raise
                    except (httpx.TransportError, ServerAway) as exc:
                        if self._stop.is_set():
                            break
                        refused = self.transport.refusal(exc, self.server)
                        if refused is not None:  # an unverified server is never retried
                            raise refused from None
                        self.failures += 1
                        hint = tls.closed_hint(
                            exc, self.server, self.transport.client_cert is not None
                        )
                        log.warning("server away (%s%s); next try in %.0f s", exc, hint, delay)
                        self._pause(delay * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)
                        delay = min(delay * 2, BACKOFF_S[1])
                        continue
                    delay = BACKOFF_S[0]
                    if result is not None and self.on_pull is not None:
                        self.on_pull(result)
        except FollowStopped:
            log.info("stopped while waiting for the server")

    def _round(self, http: httpx.Client, copy: Copy) -> PullResult | None:
        return pull_once(http, self.headers, copy, self.wait_s, self._interruptible_wait)

    @contextmanager
    def _interruptible_wait(self) -> Iterator[None]:
        """A wait that stop() cuts short (by raising FollowStopped inside it)."""
        self._interruptible = True
        try:
            if self._stop.is_set():
                raise FollowStopped
            yield
        finally:
            self._interruptible = False

    def _pause(self, seconds: float) -> None:
        with self._interruptible_wait():
            self._stop.wait(seconds)
