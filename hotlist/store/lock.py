"""One writer at a time: an exclusive ``flock`` on ``data_dir/.writer.lock``.

The kernel drops the lock when the process dies, ``kill -9`` included, so a crashed run
never blocks the next one. The holder writes its pid and start time into the file, so
that whoever waits can say who it waits for.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hotlist.store import private_dir

LOCK_FILE = ".writer.lock"


class StoreBusy(Exception):
    """Another process holds the store longer than the caller may wait."""


def holder(data_dir: Path) -> str | None:
    """Who holds the writer lock ("pid N since T"), or None when no live process does.

    Read without locking, so that asking never delays a writer; a killed holder's note
    names a process that is gone, and counts as none."""
    try:
        text = (data_dir / LOCK_FILE).read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None
    try:
        os.kill(int(text.split()[1]), 0)
    except (IndexError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # alive, another user's
    return text


@contextmanager
def writer_lock(data_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the writer lock; wait up to ``wait_s`` seconds for it, then raise StoreBusy."""
    private_dir(data_dir)
    path = data_dir / LOCK_FILE
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
                        f"another hotlist writer ({holder(data_dir) or 'a process'}) holds"
                        f" {path}; wait for it to finish"
                    ) from None
                time.sleep(0.2)
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {since}".encode(), 0)
        old_umask = os.umask(0o077)
        try:
            yield
        finally:
            os.umask(old_umask)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
