"""Files that hold record content or a secret are mode 0600, wherever they are written.

Outside ``data_dir`` a file lands in a directory someone else chose (``hotlist pull
--out``, ``--key-file``, ``report --out``): neither the umask nor an existing file's mode
can be trusted. So a file is written under a temporary name created with mode 0600 (its
mode forced, should a leftover of a killed run already stand there), flushed to disk,
and renamed over the target: the target is then a new 0600 file whatever it was before.
The temporary name is fixed, so a run killed mid-write leaves one leftover that the next
run overwrites, never a trail of copies.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

PRIVATE_FILE = 0o600


def temporary_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    return path.with_name(path.name + ".tmp")


@contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """Write a new ``path``, mode 0600, atomically: all of it, or the old file untouched."""
    tmp = temporary_path(path)
    # O_NOFOLLOW: a symlink planted at the temporary name is refused, not written through.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), PRIVATE_FILE)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_private(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` as a new 0600 file, atomically."""
    with replacing(path) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def make_private(path: Path) -> None:
    """Force an existing regular file to mode 0600 (a symlink is left alone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink: its target is not ours to change
            return
        raise
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
