"""``sftp://`` source: fetch files from an SFTP server whose host key is pinned.

URL form ``sftp://user@host:port/remote/dir``. Trust (the pinned host keys in
``known_hosts``, the client key ``private_key`` and its passphrase) is
:mod:`hotlist.sources.sftp_trust`; the SSH session and the classification of its failures
are :mod:`hotlist.sources.sftp_connect`. This module is the fetch itself.

Each file is stat'ed (a directory, FIFO or device, even behind a symbolic link, is refused
as what it is), skipped without a download when its ``<name>.sha256`` companion names the
file taken last, else downloaded to ``<name>.part`` (0600) while hashing, fsynced, stat'ed
again (a file that moved during the read is downloaded again, a few times at most),
checked against the companion when the server has one, dropped when its hash is the last
taken file's, and renamed into place. Every failure
becomes a :class:`FetchError` naming the server, port and remote path; a failed file leaves
nothing in the landing area.

Speed (loopback OpenSSH 9.2, see ``bench/sftp_leg.py``): aes128-gcm first in the cipher
list, TCP_NODELAY on the socket (both in :mod:`hotlist.sources.sftp_connect`), 255 KiB read
requests (OpenSSH's sftp-server answers reads of up to 261120 bytes) with the whole file
prefetched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
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
from hotlist.sources.sftp_connect import Endpoint, sftp_session, translated
from hotlist.sources.sftp_trust import PASSPHRASE_ENV, known_hosts_file, load_private_key

__all__ = [
    "ATTEMPTS",
    "PASSPHRASE_ENV",
    "RETRY_PAUSE_S",
    "Endpoint",
    "fetch_sftp",
    "parse_sftp_url",
]

log = logging.getLogger(__name__)

#: Bytes per SFTP read request: OpenSSH's sftp-server answers up to 261120 (255 KiB).
READ_REQUEST_BYTES = 255 * 1024
#: Downloads of one file before giving up on a file that keeps changing.
ATTEMPTS = 3
RETRY_PAUSE_S = 1.0
COMPANION_SUFFIX = ".sha256"
_COMPANION_MAX_BYTES = 4096


@dataclass(frozen=True)
class _Stat:
    size: int
    mtime: int


def parse_sftp_url(url: str) -> Endpoint:
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
    return Endpoint(unquote(parsed.username), parsed.hostname, port, directory)


def fetch_sftp(
    source: SourceConfig, feeds: list[str], landing: Path, last_taken: LastTaken
) -> list[LandedFile | Unchanged]:
    """Download each feed's file into ``landing``; same contract as ``fetch_local``."""
    endpoint = parse_sftp_url(source.url)
    names = _configured_names(source, feeds)
    known_hosts = known_hosts_file(source)
    key = load_private_key(source)
    remove_stale_parts(landing)
    out: list[LandedFile | Unchanged] = []
    with sftp_session(endpoint, source, key, known_hosts) as sftp:
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


# -- one file --------------------------------------------------------------------------------


def _stat(sftp: paramiko.SFTPClient, endpoint: Endpoint, remote: str) -> _Stat:
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


def _expected_sha256(sftp: paramiko.SFTPClient, endpoint: Endpoint, name: str) -> str | None:
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
    endpoint: Endpoint
    source: SourceConfig
    landing: Path
    last_taken: LastTaken

    def fetch(self, feed: str, name: str) -> LandedFile | Unchanged:
        remote = self.endpoint.path(name)
        part = self.landing / (name + TMP_SUFFIX)
        try:
            with translated(self.endpoint, remote, self.source):
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
