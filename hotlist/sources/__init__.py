"""Acquisition: bring upstream files into the landing area, verified and atomic.

A source lists the configured names on its server, downloads each to a temporary name
under ``data_dir/landing``, fsyncs, checks, and renames into place. A file is "unchanged"
only by its content: when its ``<name>.sha256`` companion names the hash of the file
taken last, it is not downloaded at all; without a companion it is downloaded and hashed,
and dropped if the hash is the last one's. Size and mtime never decide it: an upstream
that rewrites a file within the same second at the same size would otherwise have its
changes, and their removals, skipped. What comes back is a
:class:`LandedFile` per file: paths, hashes and sizes, never content.

This module holds the types every source shares and imports none of its submodules
(imports run one way); :func:`hotlist.sources.fetch.fetch` picks the source by scheme.
"""

from __future__ import annotations

import enum
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LandedFile:
    """A file in the landing area, ready to parse."""

    feed: str
    name: str
    path: Path
    sha256: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Unchanged:
    """A remote file whose content (sha256) is that of the last file taken for its feed."""

    feed: str
    name: str


@dataclass(frozen=True)
class Taken:
    """The last file taken for a feed: applied, or found identical to an applied one."""

    name: str
    sha256: str


#: ``feed -> the last file taken for it`` (None before the first).
LastTaken = Callable[[str], Taken | None]


_FILE_TYPES = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


def file_type(mode: int) -> str:
    """What a file that is not a regular file is, for a message: "a directory", ..."""
    return _FILE_TYPES.get(stat.S_IFMT(mode), f"not a regular file (mode {mode:o})")


def never_taken(feed: str) -> None:
    """A :data:`LastTaken` for a feed with no history: every file is fetched."""
    return None


def is_unchanged(last: Taken | None, name: str, sha256: str | None) -> bool:
    """True when ``sha256`` (of the file, or from its companion) is the last taken file's."""
    return sha256 is not None and last is not None and (last.name, last.sha256) == (name, sha256)


class FetchFailure(enum.Enum):
    """Why a fetch failed; ``transient`` ones are worth a retry."""

    AUTH_REFUSED = "auth-refused"
    HOST_KEY_MISMATCH = "host-key-mismatch"
    UNKNOWN_HOST = "unknown-host"
    NOT_FOUND = "not-found"
    NOT_A_FILE = "not-a-file"
    PERMISSION_DENIED = "permission-denied"
    CONNECTION_DROPPED = "connection-dropped"
    TIMEOUT = "timeout"
    CHANGED_WHILE_READ = "changed-while-read"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    UNSAFE_NAME = "unsafe-name"
    CONFIG = "config"
    TLS_REFUSED = "tls-refused"
    TLS_PIN_MISMATCH = "tls-pin-mismatch"
    HTTP_REFUSED = "http-refused"
    SERVER_ERROR = "server-error"
    NOT_A_TABLE = "not-a-table"

    @property
    def transient(self) -> bool:
        return self in {
            FetchFailure.CONNECTION_DROPPED,
            FetchFailure.TIMEOUT,
            FetchFailure.CHANGED_WHILE_READ,
            FetchFailure.SERVER_ERROR,
        }


class FetchError(Exception):
    """A fetch failed; ``kind`` says how, the message says where and what to do."""

    def __init__(self, kind: FetchFailure, message: str) -> None:
        super().__init__(f"[{kind.value}] {message}")
        self.kind = kind

    @property
    def transient(self) -> bool:
        return self.kind.transient
