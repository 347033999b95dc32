"""How an ``https://`` download's body reaches the part file (:mod:`hotlist.sources.https_progress`).

The body is read into a buffer, hashed and written a block at a time; these tests feed
it from an in-memory body, in uneven pieces, into a real part file.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from hotlist.sources.https_progress import WRITE_BYTES, PartFileError, Progress
from hotlist.sources.landing import start_writeback

MiB = 1 << 20


class _Cut(Exception):
    """The connection broke."""


def _body(size: int) -> bytes:
    return hashlib.shake_256(b"body").digest(size)


def _reader(body: bytes, cut_at: int | None = None) -> Callable[[memoryview], int]:
    """``readinto`` of a body that arrives in uneven pieces, broken at ``cut_at`` if given."""
    stream = io.BytesIO(body)
    sizes = [1, 70_000, 3 * MiB, 4096]
    turn = 0

    def readinto(buffer: memoryview) -> int:
        nonlocal turn
        if cut_at is not None and stream.tell() >= cut_at:
            raise _Cut
        limit = sizes[turn % len(sizes)]
        if cut_at is not None:
            limit = min(limit, cut_at - stream.tell())
        turn += 1
        return stream.readinto(buffer[:limit])

    return readinto


def _buffer(size: int = MiB) -> memoryview:
    return memoryview(bytearray(size))


class _WriteSizes(io.RawIOBase):
    """The real part file, with the size of each ``write`` noted."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sizes: list[int] = []

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        self.sizes.append(len(data))
        return self.out.write(data)

    def fileno(self) -> int:
        return self.out.fileno()


@pytest.mark.parametrize("size", [MiB, 4096])
def test_the_part_file_holds_the_body_and_its_hash(tmp_path: Path, size: int) -> None:
    body = _body(13 * MiB + 12345)
    with (tmp_path / "f.part").open("wb", buffering=0) as out:
        state = Progress(out)
        state.receive(_reader(body), _buffer(size))
    assert (tmp_path / "f.part").read_bytes() == body
    assert state.body().sha256 == hashlib.sha256(body).hexdigest()
    assert state.body().size == len(body)


def test_a_broken_connection_keeps_every_byte_that_arrived(tmp_path: Path) -> None:
    """What arrived before the break is on disk and counted: the resumption starts there."""
    body = _body(9 * MiB)
    cut = 7 * MiB + 999
    with (tmp_path / "f.part").open("wb", buffering=0) as out:
        state = Progress(out)
        with pytest.raises(_Cut):
            state.receive(_reader(body, cut_at=cut), _buffer())
    assert state.received == cut
    assert (tmp_path / "f.part").read_bytes() == body[:cut]


def test_the_part_file_is_written_in_pieces_of_at_most_64_kib(tmp_path: Path) -> None:
    """Larger writes fill the page cache with large folios, much slower to copy into here."""
    body = _body(3 * MiB + 5)
    with (tmp_path / "f.part").open("wb", buffering=0) as part:
        out = _WriteSizes(part)
        state = Progress(out)  # type: ignore[arg-type]
        state.receive(_reader(body), _buffer())
    assert WRITE_BYTES == 64 * 1024
    assert max(out.sizes) == WRITE_BYTES
    assert sum(out.sizes) == len(body)


def test_a_write_that_fails_is_raised_as_the_part_files_failure(tmp_path: Path) -> None:
    """A full disk, say: not the connection's doing, so not a drop to resume."""
    path = tmp_path / "f.part"
    path.write_bytes(b"")
    with path.open("rb", buffering=0) as read_only:  # every write fails with EBADF
        state = Progress(read_only)
        with pytest.raises(PartFileError):
            state.receive(_reader(_body(3 * MiB)), _buffer())


def test_starting_the_write_out_leaves_the_file_as_written(tmp_path: Path) -> None:
    data = _body(5 * MiB)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        start_writeback(fd, 0, 4 * MiB)
        start_writeback(fd, 4 * MiB, 0)
        os.write(fd, b"tail")
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data + b"tail"


def test_starting_the_write_out_is_a_hint_that_never_raises(tmp_path: Path) -> None:
    """Where it fails the final fsync, which reports a failed write-out, does it all."""
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    start_writeback(fd, 0, MiB)  # a closed descriptor
