"""Erasure of files that held record content: overwrite in place, fsync, then unlink.

Unlinking a file frees its blocks; it does not clear them, so a removed plate stays
readable in the raw device until the blocks are reused. Every file that held record
content (content files, landing files, published versions, exports, rewrites, temporary
and spill files) is therefore scrubbed before it is deleted or replaced.

What this reaches: the file's own blocks on a filesystem that overwrites in place (ext4,
xfs without reflinks). What it does not: copy-on-write filesystems (btrfs, zfs, reflinked
xfs), snapshots and backups of the volume, and blocks an SSD remaps internally;
``docs/inventory.md`` says what an operator must do there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20


def scrub_file(path: Path) -> None:
    """Overwrite every byte of a regular file with zeros in place and fsync it.

    The file keeps its name and size; a symlink is never followed (its target is not
    ours to erase). A file that does not exist is nothing to scrub.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as error:
        if os.path.islink(path):
            return
        raise error
    try:
        scrub_fd(fd)
    finally:
        os.close(fd)


def scrub_fd(fd: int) -> None:
    """Overwrite every byte of the regular file open (for writing) as ``fd`` with zeros
    and fsync it: also when its name is gone or names another file by now."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return
    zeros = bytes(_BLOCK)
    left = info.st_size
    offset = 0
    while left > 0:
        n = os.pwrite(fd, zeros[: min(_BLOCK, left)], offset)
        offset += n
        left -= n
    os.fsync(fd)


def scrub_unlink(path: Path) -> None:
    """Scrub a file, then unlink it and fsync its directory. Missing files are ignored."""
    scrub_file(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def scrub_tree(root: Path) -> None:
    """Scrub and unlink every file below ``root``, then remove its directories."""
    if not root.exists():
        return
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        here = Path(dirpath)
        for name in filenames:
            scrub_unlink(here / name)
        for name in dirnames:
            sub = here / name
            if sub.is_symlink():
                sub.unlink()
            else:
                sub.rmdir()
    root.rmdir()


def checkpoint_scrubbing_wal(con: Any, database: Path) -> None:
    """``CHECKPOINT`` a DuckDB database written through ``con``, and scrub its WAL.

    The WAL holds what was written since the last checkpoint (whole rows, when a table
    is smaller than a row group), and DuckDB unlinks it at the checkpoint without
    overwriting it. A second name keeps its inode alive across the checkpoint, so it can
    be scrubbed afterwards. The connection should not checkpoint by itself before this
    (``SET checkpoint_threshold`` high), or the WAL is gone before it is named.
    """
    wal = database.with_name(database.name + ".wal")
    keep = database.with_name(database.name + ".wal.scrub")
    scrub_unlink(keep)
    try:
        os.link(wal, keep)
    except FileNotFoundError:
        con.execute("CHECKPOINT")
        return
    try:
        con.execute("CHECKPOINT")
    finally:
        scrub_unlink(keep)
