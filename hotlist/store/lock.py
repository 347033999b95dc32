"""One writer at a time: an exclusive ``flock`` on ``data_dir/.writer.lock``.

The kernel drops the lock when the process dies, ``kill -9`` included, so a crashed run
never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hotlist.store import private_dir


class StoreBusy(Exception):
    """Another writer holds the store."""


@contextmanager
def writer_lock(data_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the writer lock; wait up to ``wait_s`` seconds for it, then raise StoreBusy."""
    private_dir(data_dir)
    path = data_dir / ".writer.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"another hotlist writer holds {path}; wait for it to finish"
                    ) from None
                time.sleep(0.2)
        old_umask = os.umask(0o077)
        try:
            yield
        finally:
            os.umask(old_umask)
    finally:
        os.close(fd)
