"""The part file of an ``https://`` download, written past the page cache where it can be.

The body is written in whole 1 MiB blocks at 1 MiB offsets from page-aligned buffers.
Such a block goes to the disk with ``O_DIRECT`` on a second descriptor: the device takes
it while the next block arrives, so the fsync at the end has only the file's tail and
metadata left, where a page-cache write leaves all 125 MB of an extract to it (and the
kernel's copy into the cache costs CPU besides). Any other write (the tail, a resumed
download's first block, a filesystem without direct I/O) goes through the page cache on
the ordinary descriptor; the fsync covers both. Measured in docs/benchmarks.md, "The
HTTPS source".
"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

#: Direct I/O needs the offset, length and memory address aligned to the device's logical
#: block; a page is a multiple of every block size in use.
ALIGN = mmap.PAGESIZE
_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def aligned_buffers(size: int, count: int) -> list[memoryview]:
    """``count`` page-aligned buffers of ``size`` bytes (anonymous maps are page-aligned)."""
    return [memoryview(mmap.mmap(-1, size)) for _ in range(count)]


class PartFile:
    """A part file open for positioned writes, with a direct-I/O descriptor beside it."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, _FLAGS | os.O_CREAT | os.O_TRUNC, 0o600)
        self._direct: int | None = None
        if hasattr(os, "O_DIRECT"):
            try:
                self._direct = os.open(path, _FLAGS | os.O_DIRECT)
            except OSError:  # a filesystem without direct I/O (tmpfs, some network ones)
                self._direct = None

    def pwrite(self, data: memoryview, offset: int) -> None:
        """Write all of ``data`` at ``offset``."""
        if self._direct is not None and offset % ALIGN == 0 and len(data) % ALIGN == 0:
            try:
                self._all(self._direct, data, offset)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # not "no direct I/O here": a real failure
                    raise
                os.close(self._direct)
                self._direct = None
        self._all(self.fd, data, offset)

    @staticmethod
    def _all(fd: int, data: memoryview, offset: int) -> None:
        while data:  # a write may take less than it was given
            n = os.pwrite(fd, data, offset)
            data, offset = data[n:], offset + n

    def truncate(self) -> None:
        os.ftruncate(self.fd, 0)

    def fsync(self) -> None:
        os.fsync(self.fd)  # the inode's data, whichever descriptor wrote it, and metadata

    def close(self) -> None:
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
        os.close(self.fd)

    def __enter__(self) -> PartFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
