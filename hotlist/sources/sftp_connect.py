"""Connection for ``sftp://`` sources: the SSH session and what its failures mean.

:func:`sftp_session` opens a TCP connection (TCP_NODELAY: paramiko never sets it, and
small SFTP requests stall without it), runs the SSH handshake proposing AES-GCM first
(one pass for cipher and MAC), checks the host key against the pins
(:mod:`hotlist.sources.sftp_trust`), logs in with the client key and starts the sftp
subsystem with keepalives and a read timeout. Every paramiko, socket or SFTP error, while
connecting or inside :func:`translated`, becomes a :class:`FetchError` naming the server,
port and remote path and saying what to do.
"""

from __future__ import annotations

import logging
import posixpath
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from hotlist.config import SourceConfig
from hotlist.sources import FetchError, FetchFailure
from hotlist.sources.sftp_trust import RefuseUnknownHost, host_key_changed

log = logging.getLogger(__name__)

KEEPALIVE_S = 15
#: Ciphers tried first; paramiko otherwise prefers aes-ctr with a separate MAC (slower).
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


@dataclass(frozen=True)
class Endpoint:
    """Where an ``sftp://`` URL points."""

    user: str
    host: str
    port: int
    directory: str

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host} port {self.port}"

    def path(self, name: str) -> str:
        return posixpath.join(self.directory, name)


#: paramiko's transport thread logs a failed handshake as ERROR lines plus a traceback, one
#: record per line, before the connecting thread gets the same error; that error becomes
#: a FetchError with the reason, so the thread's copy is kept to one debug line.
TRANSPORT_LOG = "hotlist.sources.sftp.transport"


class _TransportErrorsToDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        message = record.getMessage()
        if message.startswith(("Exception (", "Unknown exception")):
            log.debug("SSH transport: %s", message.splitlines()[0])
        return False


logging.getLogger(TRANSPORT_LOG).addFilter(_TransportErrorsToDebug())


def _open_socket(endpoint: Endpoint, timeout_s: float) -> socket.socket:
    """TCP connection with TCP_NODELAY (paramiko never sets it; small SFTP requests stall)."""
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)
    except TimeoutError:
        raise FetchError(
            FetchFailure.TIMEOUT,
            f"{endpoint.host} port {endpoint.port} did not accept a connection within"
            f" {timeout_s:g} s; check the server and the network, or raise connect_timeout_s",
        ) from None
    except OSError as exc:
        raise FetchError(
            FetchFailure.CONNECTION_DROPPED,
            f"cannot connect to {endpoint.host} port {endpoint.port} ({exc.strerror or exc});"
            " check that the server is up and the URL is right, then retry",
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _fast_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """A Transport that proposes AES-GCM first (one pass for cipher and MAC)."""
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    transport.set_log_channel(TRANSPORT_LOG)
    offered = tuple(options.ciphers)
    options.ciphers = tuple(c for c in FAST_CIPHERS if c in offered) + tuple(
        c for c in offered if c not in FAST_CIPHERS
    )
    return transport


def connect(
    endpoint: Endpoint, source: SourceConfig, key: paramiko.PKey, known_hosts: Path
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.get_host_keys().load(str(known_hosts))
    client.set_missing_host_key_policy(RefuseUnknownHost(endpoint.host, endpoint.port, known_hosts))
    sock = _open_socket(endpoint, source.connect_timeout_s)
    started = time.monotonic()
    try:
        client.connect(
            endpoint.host,
            endpoint.port,
            username=endpoint.user,
            pkey=key,
            sock=sock,
            timeout=source.connect_timeout_s,
            banner_timeout=source.connect_timeout_s,
            auth_timeout=source.connect_timeout_s,
            channel_timeout=source.connect_timeout_s,
            allow_agent=False,
            look_for_keys=False,
            transport_factory=_fast_transport,
        )
    except BaseException as exc:
        # Whether the server ever sent its banner: the connecting thread may see only "No
        # existing session" while the transport thread is still waiting for it.
        transport = client.get_transport()
        no_banner = transport is not None and not transport.remote_version
        client.close()
        sock.close()
        if isinstance(exc, FetchError) or not isinstance(exc, Exception):
            raise
        timed_out = time.monotonic() - started >= source.connect_timeout_s
        raise _connect_failure(
            exc, endpoint, source, key, known_hosts, timed_out, no_banner
        ) from exc
    return client


def _connect_failure(
    exc: Exception,
    endpoint: Endpoint,
    source: SourceConfig,
    key: paramiko.PKey,
    known_hosts: Path,
    timed_out: bool,
    no_banner: bool = False,
) -> FetchError:
    """Classify a failure of the handshake, host key check or login."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return host_key_changed(endpoint.host, endpoint.port, known_hosts, exc)
    if isinstance(exc, paramiko.AuthenticationException) and _is_refusal(exc):
        return FetchError(
            FetchFailure.AUTH_REFUSED,
            f"{endpoint.label} refused key authentication with {source.private_key}"
            f" ({key.get_name()} {key.fingerprint}); ask the server's operator to"
            f" authorize that public key for user {endpoint.user}, or fix private_key or"
            " the user in the URL",
        )
    if no_banner:
        return FetchError(
            FetchFailure.TIMEOUT,
            f"{endpoint.host} port {endpoint.port} accepted the connection but sent no SSH"
            f" banner within {source.connect_timeout_s:g} s: it is not an SSH server, or it is"
            " frozen or overloaded; check the port in the URL, retry later, or raise"
            " connect_timeout_s",
        )
    # paramiko reports a handshake that ran out of time as "No existing session".
    if timed_out or _is_timeout(exc):
        return FetchError(
            FetchFailure.TIMEOUT,
            f"{endpoint.host} port {endpoint.port} did not complete the SSH handshake and login"
            f" within {source.connect_timeout_s:g} s; check that it is an SSH server and"
            " healthy, retry later, or raise connect_timeout_s",
        )
    return _classify(exc, endpoint, "", source)


def _is_refusal(exc: paramiko.AuthenticationException) -> bool:
    """True when the server said no (not a timeout or a connection lost during auth)."""
    text = str(exc).lower()
    return "timeout" not in text and "transport shut down" not in text


@contextmanager
def sftp_session(
    endpoint: Endpoint, source: SourceConfig, key: paramiko.PKey, known_hosts: Path
) -> Iterator[paramiko.SFTPClient]:
    client = connect(endpoint, source, key, known_hosts)
    try:
        with translated(endpoint, endpoint.directory, source):
            transport = client.get_transport()
            if transport is None:
                raise paramiko.SSHException("the SSH session closed right after login")
            transport.set_keepalive(KEEPALIVE_S)
            sftp = paramiko.SFTPClient.from_transport(transport)
            channel = sftp.get_channel() if sftp is not None else None
            if sftp is None or channel is None:
                raise paramiko.SSHException("the server refused the sftp subsystem")
            channel.settimeout(source.read_timeout_s)
        try:
            yield sftp
        finally:
            _close_quietly(sftp)
    finally:
        _close_quietly(client)


def _close_quietly(closable: paramiko.SFTPClient | paramiko.SSHClient) -> None:
    """Hang up; on a dropped connection this fails, and must not mask the error being raised."""
    try:
        closable.close()
    except Exception as exc:
        log.debug("closing the SFTP session failed: %s", type(exc).__name__)


# -- failures --------------------------------------------------------------------------------


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return True
    text = str(exc).lower()
    return isinstance(exc, paramiko.SSHException) and ("timeout" in text or "timed out" in text)


def _classify(exc: Exception, endpoint: Endpoint, remote: str, source: SourceConfig) -> FetchError:
    """Map a paramiko/socket/SFTP exception to a FetchError that says where and what to do."""
    where = f"{remote} on {endpoint.label}"
    at = f"at {remote}" if remote else "while connecting"
    if isinstance(exc, FileNotFoundError):
        return FetchError(
            FetchFailure.NOT_FOUND,
            f"{where} does not exist; check the file name and the directory in the URL, or ask"
            " the upstream whether it was published",
        )
    if isinstance(exc, PermissionError):
        return FetchError(
            FetchFailure.PERMISSION_DENIED,
            f"the server refused to let {endpoint.user} read {where}; ask the server's operator"
            " to grant read access",
        )
    if _is_timeout(exc):
        return FetchError(
            FetchFailure.TIMEOUT,
            f"{endpoint.label} stopped answering ({source.read_timeout_s:g} s read timeout,"
            f" {source.connect_timeout_s:g} s connect timeout) {at}; retry later, or"
            " raise read_timeout_s / connect_timeout_s for a slow link",
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return FetchError(
            FetchFailure.AUTH_REFUSED,
            f"{endpoint.label} did not authenticate user {endpoint.user}: {exc}",
        )
    return FetchError(
        FetchFailure.CONNECTION_DROPPED,
        f"the connection to {endpoint.label} failed {at} ({type(exc).__name__}: {exc});"
        " retry; nothing partial was kept",
    )


@contextmanager
def translated(endpoint: Endpoint, remote: str, source: SourceConfig) -> Iterator[None]:
    try:
        yield
    except FetchError:
        raise
    except Exception as exc:
        raise _classify(exc, endpoint, remote, source) from exc
