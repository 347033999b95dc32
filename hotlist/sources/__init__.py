"""Acquisition: bring upstream files into the landing area, verified and atomic.

A source lists the configured names on its server, skips a file whose size and mtime
match what was applied last, downloads the rest to a temporary name under
``data_dir/landing``, fsyncs, checks, and renames into place. What comes back is a
:class:`LandedFile` per file: paths, hashes and sizes, never content.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hotlist.config import SourceConfig


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
    """A remote file whose size and mtime equal those of the last applied file."""

    feed: str
    name: str


class FetchFailure(enum.Enum):
    """Why a fetch failed; ``transient`` ones are worth a retry."""

    AUTH_REFUSED = "auth-refused"
    HOST_KEY_MISMATCH = "host-key-mismatch"
    UNKNOWN_HOST = "unknown-host"
    NOT_FOUND = "not-found"
    PERMISSION_DENIED = "permission-denied"
    CONNECTION_DROPPED = "connection-dropped"
    TIMEOUT = "timeout"
    CHANGED_WHILE_READ = "changed-while-read"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    UNSAFE_NAME = "unsafe-name"
    CONFIG = "config"

    @property
    def transient(self) -> bool:
        return self in {
            FetchFailure.CONNECTION_DROPPED,
            FetchFailure.TIMEOUT,
            FetchFailure.CHANGED_WHILE_READ,
        }


class FetchError(Exception):
    """A fetch failed; ``kind`` says how, the message says where and what to do."""

    def __init__(self, kind: FetchFailure, message: str) -> None:
        super().__init__(f"[{kind.value}] {message}")
        self.kind = kind

    @property
    def transient(self) -> bool:
        return self.kind.transient


#: ``(feed, remote name, size, mtime) -> True`` when that exact file was applied already.
SeenBefore = Callable[[str, str, int, float], bool]


def fetch(
    source_name: str,
    source: SourceConfig,
    feeds: list[str],
    data_dir: Path,
    seen_before: SeenBefore,
) -> list[LandedFile | Unchanged]:
    """Fetch ``feeds`` of a configured source into ``data_dir/landing/<source_name>``."""
    from hotlist.sources.landing import landing_dir

    landing = landing_dir(data_dir, source_name)
    if source.url.startswith("file://"):
        from hotlist.sources.local import fetch_local

        return fetch_local(source, feeds, landing, seen_before)
    from hotlist.sources.sftp import fetch_sftp

    return fetch_sftp(source, feeds, landing, seen_before)
