"""``sftp://`` source: fetch files from an SFTP server whose host key is pinned.

URL form ``sftp://user@host:port/remote/dir``. The client authenticates with the key file
``private_key`` (ed25519 or RSA; passphrase from ``HOTLIST_SFTP_PASSPHRASE`` when the key is
encrypted) and trusts only the host keys in ``known_hosts``: an unknown host or a changed
key is refused (CJIS: pin the server's host key), never learned.

Each file is stat'ed (a directory, FIFO or device, even behind a symbolic link, is refused
as what it is), skipped without a download when its ``<name>.sha256`` companion names the
file taken last, else downloaded to ``<name>.part`` (0600) while hashing, fsynced, stat'ed
again (a file that moved during the read is downloaded again, a few times at most),
checked against the companion when the server has one, dropped when its hash is the last
taken file's, and renamed into place. Every failure
becomes a :class:`FetchError` naming the server, port and remote path; a failed file leaves
nothing in the landing area.

Speed (loopback OpenSSH 9.2, see ``bench/sftp_leg.py``): aes128-gcm first in the cipher
list, TCP_NODELAY on the socket, 255 KiB read requests (OpenSSH's sftp-server answers reads
of up to 261120 bytes) with the whole file prefetched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlparse

import paramiko

from hotlist.config import SourceConfig
from hotlist.sources import (
    FetchError,
    FetchFailure,
    LandedFile,
    LastTaken,
    Unchanged,
    file_type,
    is_unchanged,
)
from hotlist.sources.landing import (
    TMP_SUFFIX,
    check_remote_name,
    discard,
    parse_sha256_companion,
    publish_file,
    remove_stale_parts,
)

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "HOTLIST_SFTP_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
KEEPALIVE_S = 15
#: Bytes per SFTP read request: OpenSSH's sftp-server answers up to 261120 (255 KiB).
READ_REQUEST_BYTES = 255 * 1024
#: Ciphers tried first; paramiko otherwise prefers aes-ctr with a separate MAC (slower).
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
#: Downloads of one file before giving up on a file that keeps changing.
ATTEMPTS = 3
RETRY_PAUSE_S = 1.0
COMPANION_SUFFIX = ".sha256"
_COMPANION_MAX_BYTES = 4096


@dataclass(frozen=True)
class _Endpoint:
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


@dataclass(frozen=True)
class _Stat:
    size: int
    mtime: int


def parse_sftp_url(url: str) -> _Endpoint:
    """``sftp://user@host:port/dir`` -> endpoint; port 22 and the login directory by default."""
    parsed = urlparse(url)
    try:
        port = parsed.port or 22
    except ValueError:
        raise FetchError(FetchFailure.CONFIG, f"{url!r} has an invalid port") from None
    if parsed.scheme != "sftp" or not parsed.hostname or not parsed.username:
        raise FetchError(
            FetchFailure.CONFIG,
            f"{url!r} is not an sftp URL of the form sftp://user@host:port/remote/dir",
        )
    directory = unquote(parsed.path) or "."
    return _Endpoint(unquote(parsed.username), parsed.hostname, port, directory)


def fetch_sftp(
    source: SourceConfig, feeds: list[str], landing: Path, last_taken: LastTaken
) -> list[LandedFile | Unchanged]:
    """Download each feed's file into ``landing``; same contract as ``fetch_local``."""
    endpoint = parse_sftp_url(source.url)
    names = _configured_names(source, feeds)
    known_hosts = _known_hosts_file(source)
    key = _load_private_key(source)
    remove_stale_parts(landing)
    out: list[LandedFile | Unchanged] = []
    with _sftp_session(endpoint, source, key, known_hosts) as sftp:
        fetcher = _Fetcher(sftp, endpoint, source, landing, last_taken)
        for feed in feeds:
            out.append(fetcher.fetch(feed, names[feed]))
    return out


# -- configuration ---------------------------------------------------------------------------


def _configured_names(source: SourceConfig, feeds: list[str]) -> dict[str, str]:
    """Check every listed name (no traversal, NUL or absolute path) before any network use."""
    allowed = set(source.files.values())
    for name in allowed:
        check_remote_name(name, allowed)
    missing = [feed for feed in feeds if feed not in source.files]
    if missing:
        raise FetchError(
            FetchFailure.CONFIG,
            f"feeds {missing} have no file name; add them to the source's files table",
        )
    return {feed: source.files[feed] for feed in feeds}


def _known_hosts_file(source: SourceConfig) -> Path:
    if source.known_hosts is None:
        raise FetchError(
            FetchFailure.CONFIG,
            "known_hosts is required for sftp:// sources: set it to a known_hosts file holding"
            " the server's host key (ssh-keyscan, then verify the fingerprint out of band)",
        )
    if not source.known_hosts.is_file():
        raise FetchError(
            FetchFailure.CONFIG, f"known_hosts file {source.known_hosts} does not exist"
        )
    return source.known_hosts


def _secret_block(name: str | None) -> str | None:
    """The passphrase kept in a Prefect Secret block (loaded from the Prefect API)."""
    if not name:
        return None
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except ValueError:
        raise FetchError(
            FetchFailure.CONFIG, f"passphrase_secret: no Prefect Secret block named {name!r}"
        ) from None
    return str(value)


def _load_private_key(source: SourceConfig) -> paramiko.PKey:
    """Load ``private_key``; an encrypted key is opened with ``HOTLIST_SFTP_PASSPHRASE``."""
    path = source.private_key
    if path is None:
        raise FetchError(
            FetchFailure.CONFIG,
            "private_key is required for sftp:// sources (an ed25519 or RSA key file)",
        )
    try:
        mode = path.stat().st_mode
    except OSError:
        raise FetchError(FetchFailure.CONFIG, f"private_key {path} cannot be read") from None
    if mode & 0o077:
        raise FetchError(
            FetchFailure.CONFIG,
            f"private_key {path} is accessible by other users (mode {stat.S_IMODE(mode):o});"
            f" run chmod 600 {path}",
        )
    try:
        return paramiko.PKey.from_path(path)
    except TypeError:  # encrypted, no password given
        pass
    except (ValueError, paramiko.SSHException) as exc:
        raise FetchError(
            FetchFailure.CONFIG, f"private_key {path} is not a usable key: {exc}"
        ) from None
    passphrase = os.environ.get(PASSPHRASE_ENV) or _secret_block(source.passphrase_secret)
    if not passphrase:
        raise FetchError(
            FetchFailure.CONFIG,
            f"private_key {path} is encrypted; set {PASSPHRASE_ENV} in the environment"
            " or name a Prefect Secret block in passphrase_secret",
        )
    try:
        # cryptography wants bytes; paramiko's annotation says str but passes it through.
        return paramiko.PKey.from_path(path, password=passphrase.encode())  # type: ignore[arg-type]
    except (TypeError, ValueError, paramiko.SSHException):
        raise FetchError(
            FetchFailure.CONFIG, f"private_key {path}: {PASSPHRASE_ENV} does not open it"
        ) from None


# -- connection ------------------------------------------------------------------------------


class _RefuseUnknownHost(paramiko.RejectPolicy):
    """RejectPolicy whose refusal says which key was offered and how to pin it."""

    def __init__(self, endpoint: _Endpoint, known_hosts: Path) -> None:
        self.endpoint = endpoint
        self.known_hosts = known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        e = self.endpoint
        raise FetchError(
            FetchFailure.UNKNOWN_HOST,
            f"{e.host} port {e.port} is not in {self.known_hosts} (it offered {key.get_name()}"
            f" {key.fingerprint}); refusing an unverified server. Run"
            f" `ssh-keyscan -p {e.port} {e.host}`, verify the fingerprint with the server's"
            f" operator out of band, then add that line to {self.known_hosts}",
        )


def _host_key_changed(
    endpoint: _Endpoint, known_hosts: Path, exc: paramiko.BadHostKeyException
) -> FetchError:
    e = endpoint
    pinned = f"[{e.host}]:{e.port}" if e.port != 22 else e.host
    return FetchError(
        FetchFailure.HOST_KEY_MISMATCH,
        f"the host key of {e.host} port {e.port} changed: it offered {exc.key.get_name()}"
        f" {exc.key.fingerprint}, {known_hosts} pins {exc.expected_key.get_name()}"
        f" {exc.expected_key.fingerprint}. Someone may be in the middle, or the server was"
        " re-keyed: fetch nothing until the new fingerprint is confirmed with the server's"
        f" operator out of band, then replace the entry (ssh-keygen -R '{pinned}' -f"
        f" {known_hosts}; ssh-keyscan -p {e.port} {e.host})",
    )


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


def _open_socket(endpoint: _Endpoint, timeout_s: float) -> socket.socket:
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


def _connect(
    endpoint: _Endpoint, source: SourceConfig, key: paramiko.PKey, known_hosts: Path
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.get_host_keys().load(str(known_hosts))
    client.set_missing_host_key_policy(_RefuseUnknownHost(endpoint, known_hosts))
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
    endpoint: _Endpoint,
    source: SourceConfig,
    key: paramiko.PKey,
    known_hosts: Path,
    timed_out: bool,
    no_banner: bool = False,
) -> FetchError:
    """Classify a failure of the handshake, host key check or login."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return _host_key_changed(endpoint, known_hosts, exc)
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
def _sftp_session(
    endpoint: _Endpoint, source: SourceConfig, key: paramiko.PKey, known_hosts: Path
) -> Iterator[paramiko.SFTPClient]:
    client = _connect(endpoint, source, key, known_hosts)
    try:
        with _translated(endpoint, endpoint.directory, source):
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


def _classify(exc: Exception, endpoint: _Endpoint, remote: str, source: SourceConfig) -> FetchError:
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
def _translated(endpoint: _Endpoint, remote: str, source: SourceConfig) -> Iterator[None]:
    try:
        yield
    except FetchError:
        raise
    except Exception as exc:
        raise _classify(exc, endpoint, remote, source) from exc


# -- one file --------------------------------------------------------------------------------


def _stat(sftp: paramiko.SFTPClient, endpoint: _Endpoint, remote: str) -> _Stat:
    """Size and mtime of a regular file (a symbolic link to one is followed)."""
    try:
        attrs = sftp.stat(remote)
    except FileNotFoundError:
        link = _lstat_mode(sftp, remote)
        if link is not None and stat.S_ISLNK(link):
            raise FetchError(
                FetchFailure.NOT_FOUND,
                f"{remote} on {endpoint.label} is a symbolic link whose target does not exist;"
                " ask the upstream to fix the link or publish the file",
            ) from None
        raise
    if attrs.st_mode is not None and not stat.S_ISREG(attrs.st_mode):
        link = _lstat_mode(sftp, remote)
        through = " (through a symbolic link)" if link is not None and stat.S_ISLNK(link) else ""
        raise FetchError(
            FetchFailure.NOT_A_FILE,
            f"{remote} on {endpoint.label} is {file_type(attrs.st_mode)}{through}, not a"
            " regular file; nothing was read; check the file name in the configuration or"
            " ask the upstream what it published there",
        )
    if attrs.st_size is None or attrs.st_mtime is None:
        raise paramiko.SSHException("the server did not report size and mtime")
    return _Stat(int(attrs.st_size), int(attrs.st_mtime))


def _prefetch(src: paramiko.SFTPFile, size: int) -> None:
    """Queue read requests for the whole file; paramiko sends them from a helper thread.

    If the connection dies while that thread is still sending, paramiko lets the EOFError
    escape the thread (a traceback on stderr). The reading thread reports the failure
    anyway, so the helper's copy is dropped.
    """
    send_requests = getattr(src, "_prefetch_thread", None)
    if callable(send_requests):

        def send_quietly(*args: Any) -> None:
            try:
                send_requests(*args)
            except (EOFError, OSError, paramiko.SSHException):
                log.debug("stopped sending read requests: the connection is gone")

        vars(src)["_prefetch_thread"] = send_quietly
    src.prefetch(size)


def _download(sftp: paramiko.SFTPClient, remote: str, size: int, part: Path) -> tuple[str, int]:
    """Copy ``size`` bytes of ``remote`` to ``part`` (0600), hashing; fsync. -> (sha256, bytes)."""
    digest = hashlib.sha256()
    received = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(part, flags, 0o600), "wb", buffering=0) as out:
        src = sftp.open(remote, "rb")
        # On failure the handle is left to the session teardown: closing it here would wait
        # on a server that is gone, and could replace the real error with a later one.
        src.MAX_REQUEST_SIZE = READ_REQUEST_BYTES
        if size:
            _prefetch(src, size)
        while received < size:
            block = src.read(min(READ_REQUEST_BYTES, size - received))
            if not block:
                break
            digest.update(block)
            out.write(block)
            received += len(block)
        src.close()
        os.fsync(out.fileno())
    return digest.hexdigest(), received


def _lstat_mode(sftp: paramiko.SFTPClient, remote: str) -> int | None:
    try:
        return sftp.lstat(remote).st_mode
    except OSError:
        return None


def _expected_sha256(sftp: paramiko.SFTPClient, endpoint: _Endpoint, name: str) -> str | None:
    """The hash in ``<name>.sha256`` next to the file, or None when there is no companion."""
    try:
        with sftp.open(endpoint.path(name + COMPANION_SUFFIX), "rb") as fh:
            text = fh.read(_COMPANION_MAX_BYTES)
    except FileNotFoundError:
        return None
    return parse_sha256_companion(text.decode("ascii", "replace"), name)


@dataclass(frozen=True)
class _Fetcher:
    """One connected session fetching files into one landing directory."""

    sftp: paramiko.SFTPClient
    endpoint: _Endpoint
    source: SourceConfig
    landing: Path
    last_taken: LastTaken

    def fetch(self, feed: str, name: str) -> LandedFile | Unchanged:
        remote = self.endpoint.path(name)
        part = self.landing / (name + TMP_SUFFIX)
        try:
            with _translated(self.endpoint, remote, self.source):
                return self._fetch_verified(feed, name, remote, part)
        except BaseException:
            discard(part)
            raise

    def _fetch_verified(
        self, feed: str, name: str, remote: str, part: Path
    ) -> LandedFile | Unchanged:
        last = self.last_taken(feed)
        for attempt in range(1, ATTEMPTS + 1):
            before = _stat(self.sftp, self.endpoint, remote)
            # The companion says, without a download, that the content is the last taken.
            if is_unchanged(last, name, _expected_sha256(self.sftp, self.endpoint, name)):
                return Unchanged(feed, name)
            sha, received = _download(self.sftp, remote, before.size, part)
            if received == before.size and _stat(self.sftp, self.endpoint, remote) == before:
                break
            discard(part)
            log.warning(
                "%s changed while it was read (attempt %d of %d)", remote, attempt, ATTEMPTS
            )
            if attempt < ATTEMPTS:
                time.sleep(RETRY_PAUSE_S * attempt)
        else:
            raise FetchError(
                FetchFailure.CHANGED_WHILE_READ,
                f"{remote} on {self.endpoint.label} changed during each of {ATTEMPTS} downloads"
                " (size or mtime moved); retry after the upstream finishes writing it",
            )
        self._verify_companion(name, remote, sha)
        if is_unchanged(last, name, sha):
            discard(part)
            log.info("%s on %s: same content as the file taken last", name, self.endpoint.label)
            return Unchanged(feed, name)
        final = self.landing / name
        publish_file(part, final)
        log.info(
            "landed %s from %s (%d bytes, sha256 %s)", name, self.endpoint.label, before.size, sha
        )
        return LandedFile(feed, name, final, sha, before.size, float(before.mtime))

    def _verify_companion(self, name: str, remote: str, sha: str) -> None:
        expected = _expected_sha256(self.sftp, self.endpoint, name)
        if expected is not None and expected != sha:
            raise FetchError(
                FetchFailure.CHECKSUM_MISMATCH,
                f"{remote} on {self.endpoint.label} does not match {name}{COMPANION_SUFFIX}"
                f" (expected {expected}, got {sha}); nothing was kept; ask the upstream to"
                " republish",
            )
