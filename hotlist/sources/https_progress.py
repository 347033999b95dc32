"""One ``https://`` download's bytes so far: the part file, its hash and the resumption.

:class:`Progress` writes the body to the part file while hashing it, remembers the
``Content-Length`` and the strong validators of the response that started it, builds the
``Range`` + ``If-Range`` headers that resume it after a drop, and checks that a ``206``
continues exactly where it stopped and that the whole length arrived.

:meth:`Progress.receive` reads the body into one 1 MiB buffer, hashes it while it is
still in the processor's cache, and writes it in writes of 64 KiB, starting the write-out
of what it wrote to the disk every 4 MiB, so that the fsync at the end finds little left
to do. All in the calling thread: a second thread hashing and writing behind the
connection cost more CPU than it overlapped (measured, with what was tried and dropped,
in docs/benchmarks.md, "The HTTPS source").
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from hotlist.sources import FetchError, FetchFailure
from hotlist.sources.https_validators import Response, Validators, http_date
from hotlist.sources.landing import start_writeback

#: Each ``write`` to the part file is at most this large: a 1 MiB write fills the page
#: cache with large folios, taken here from memory the host had reclaimed, and copying
#: into them cost up to 0.3 CPU-s per 125 MB instead of 0.04 (docs/benchmarks.md).
WRITE_BYTES = 64 * 1024
#: Once this much more has been written, its write-out to the disk is started.
WRITEBACK_BYTES = 4 << 20
_SNIFF_BYTES = 1024
#: How much of the first read the sniff looks into (for a page's title).
_SNIFF_KEEP = 64 * 1024


class PartFileError(Exception):
    """Writing the part file failed (a full disk, say): not the connection's doing."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class Body:
    """A finished download: its hash, size, validators and modification time."""

    sha256: str
    size: int
    validators: Validators
    mtime: float


class Progress:
    """The bytes of one download so far: part file and hash, expected total, validators."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.received = 0
        self.written_out = 0  # the bytes whose write-out was started
        self.total: int | None = None
        self.validators = Validators(None, None)
        self.mtime = time.time()

    def start(self, response: Response, validators: Validators) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.digest = hashlib.sha256()
        self.received = 0
        self.written_out = 0
        length = response.headers.get("Content-Length")
        self.total = int(length) if length and length.isdigit() else None
        self.validators = validators
        modified = http_date(response.headers.get("Last-Modified"))
        self.mtime = modified.timestamp() if modified else time.time()

    def resume_headers(self) -> dict[str, str] | None:
        if self.received and self.total is not None and self.validators.if_range:
            return {"Range": f"bytes={self.received}-", "If-Range": self.validators.if_range}
        return None

    def continue_from(self, response: Response, url: str) -> None:
        match = re.fullmatch(
            r"bytes (\d+)-(\d+)/(\d+)", response.headers.get("Content-Range") or ""
        )
        if match is None or int(match[1]) != self.received or int(match[3]) != self.total:
            raise FetchError(
                FetchFailure.HTTP_REFUSED,
                f"{url} answered the resumption with a range that does not continue the"
                " download; nothing was kept",
            )

    def write(self, chunk: bytes | memoryview) -> None:
        """Hash ``chunk`` and append it to the part file; start the write-out behind."""
        self.digest.update(chunk)
        view = memoryview(chunk)
        try:
            while view:  # an unbuffered file may take less than it was given
                view = view[self.out.write(view[:WRITE_BYTES]) :]
            self.received += len(chunk)
            if self.received - self.written_out >= WRITEBACK_BYTES:
                fd = self.out.fileno()
                start_writeback(fd, self.written_out, self.received - self.written_out)
                self.written_out = self.received
        except OSError as exc:
            raise PartFileError(exc) from exc

    def receive(self, readinto: Callable[[memoryview], int], buffer: memoryview) -> None:
        """The rest of the body, a buffer at a time: each block that arrived is hashed and
        written before the next read, so when the connection fails every byte that arrived
        is in the part file (and counted, to resume from)."""
        while n := readinto(buffer):
            self.write(buffer[:n])

    def check_length(self, url: str) -> None:
        if self.total is not None and self.received != self.total:
            raise FetchError(
                FetchFailure.CONNECTION_DROPPED,
                f"{url}: {self.received} bytes arrived, Content-Length said"
                f" {self.total}; nothing was kept; retry",
            )

    def body(self) -> Body:
        return Body(self.digest.hexdigest(), self.received, self.validators, self.mtime)


def first_bytes(
    readinto: Callable[[memoryview], int], buffer: memoryview, state: Progress
) -> bytes:
    """Read (and keep) at least the first ``_SNIFF_BYTES`` of the body for the sniff."""
    got = 0
    while got < _SNIFF_BYTES and (n := readinto(buffer[got:])):
        got += n
    state.write(buffer[:got])
    return bytes(buffer[: min(got, _SNIFF_KEEP)])
