"""The cheap check for a change upstream: a stat of each file and its ``.sha256`` companion.

No record content is read, only sizes and modification times. The result, a
:data:`Marks` map, changes whenever a file or its companion is replaced, grows, shrinks
or is touched; it decides only *whether* to run an ingest. Whether a file is new is still
decided by its content in the fetch (:func:`hotlist.sources.is_unchanged`), so a stat
that moved on an identical file costs one fetch that ends ``Unchanged``.

What a stat cannot see: a file rewritten with the same size within the same second (SFTP
reports whole seconds). The source's scheduled ingests stay in place as the backstop.

An SFTP prober keeps its session open between polls; a new connection is made only after
the last one dropped.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from hotlist.config import SourceConfig
from hotlist.sources import FetchError, FetchFailure

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)

COMPANION_SUFFIX = ".sha256"


@dataclass(frozen=True)
class Mark:
    """What a stat says of one remote name: absent, or its type, size and mtime."""

    exists: bool
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0


ABSENT = Mark(False)

#: ``remote name -> Mark`` for every configured file and its companion.
Marks = dict[str, Mark]


def watched_names(source: SourceConfig) -> list[str]:
    """Each configured file and its companion, in a stable order."""
    names: list[str] = []
    for name in sorted(set(source.files.values())):
        names += [name, name + COMPANION_SUFFIX]
    return names


class Prober:
    """Stats a source's files; a context manager that keeps an SFTP session between polls."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self.connections = 0  # SFTP sessions opened so far (one while the link holds)
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> Prober:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def probe(self) -> Marks:
        """The marks of every watched name now; FetchError when the server cannot be asked."""
        if self.source.url.startswith("file://"):
            directory = Path(unquote(urlparse(self.source.url).path))
            return {name: _local_mark(directory / name) for name in watched_names(self.source)}
        if self.source.url.startswith("sftp://"):
            return self._probe_sftp()
        raise FetchError(
            FetchFailure.CONFIG, f"no change check for {self.source.url.split(':', 1)[0]}:// yet"
        )

    def close(self) -> None:
        for closable in (self._sftp, self._client):
            if closable is not None:
                try:
                    closable.close()
                except Exception as exc:  # a dropped link fails to close; nothing to keep
                    log.debug("closing the SFTP session failed: %s", type(exc).__name__)
        self._sftp = self._client = None

    def _probe_sftp(self) -> Marks:
        from hotlist.sources import sftp, sftp_connect

        endpoint = sftp.parse_sftp_url(self.source.url)
        if self._sftp is None or not _alive(self._client):
            self.close()
            self._open()
        assert self._sftp is not None
        try:
            with sftp_connect.translated(endpoint, endpoint.directory, self.source):
                return {
                    name: _sftp_mark(self._sftp, endpoint.path(name))
                    for name in watched_names(self.source)
                }
        except FetchError:
            self.close()  # the next poll connects again
            raise

    def _open(self) -> None:
        from hotlist.sources import sftp, sftp_connect, sftp_trust

        endpoint = sftp.parse_sftp_url(self.source.url)
        known_hosts = sftp_trust.known_hosts_file(self.source)
        key = sftp_trust.load_private_key(self.source)
        client = sftp_connect.connect(endpoint, self.source, key, known_hosts)
        try:
            with sftp_connect.translated(endpoint, endpoint.directory, self.source):
                transport = client.get_transport()
                if transport is None:
                    raise FetchError(
                        FetchFailure.CONNECTION_DROPPED,
                        f"the SSH session to {endpoint.label} closed right after login",
                    )
                transport.set_keepalive(sftp_connect.KEEPALIVE_S)
                session = client.open_sftp()
                channel = session.get_channel()
                if channel is not None:
                    channel.settimeout(self.source.read_timeout_s)
        except BaseException:
            client.close()
            raise
        self._client, self._sftp = client, session
        self.connections += 1


def _alive(client: Any) -> bool:
    transport = client.get_transport() if client is not None else None
    return bool(transport is not None and transport.is_active())


def _local_mark(path: Path) -> Mark:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return ABSENT
    except PermissionError:
        raise FetchError(FetchFailure.PERMISSION_DENIED, f"cannot stat {path}") from None
    return Mark(True, found.st_size, found.st_mtime_ns, stat_module.S_IFMT(found.st_mode))


def _sftp_mark(session: paramiko.SFTPClient, remote: str) -> Mark:
    try:
        attrs = session.stat(remote)
    except FileNotFoundError:
        return ABSENT
    mtime = int(attrs.st_mtime or 0) * 1_000_000_000
    mode = stat_module.S_IFMT(attrs.st_mode or 0)
    return Mark(True, int(attrs.st_size or 0), mtime, mode)
