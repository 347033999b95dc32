"""The part file of an https:// download: whole aligned blocks past the page cache, every
other write through it, and the same bytes and hash whatever the pieces' sizes."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotlist.sources.https_part import ALIGN, PartFile, aligned_buffers
from hotlist.sources.https_progress import Progress

BLOCK = 64 * 1024


def _resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache, as util-linux's fincore counts them."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.split()[0])


def _supports_direct_io(path: Path) -> bool:
    import os

    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError:
        return False
    return True


def _receive(part: PartFile, body: bytes, pieces: list[int], resume_at: int = 0) -> Progress:
    """Feed ``body`` (from ``resume_at``) to a Progress, the socket returning at most
    ``pieces[i]`` bytes on its i-th read, as a network read may."""
    state = Progress(part)
    state.received = resume_at
    source = io.BytesIO(body[resume_at:])
    sizes = iter(pieces)

    def readinto(buffer: memoryview) -> int:
        limit = next(sizes, len(buffer))
        return source.readinto(buffer[: min(len(buffer), limit)])

    state.receive(readinto, aligned_buffers(BLOCK, 2))
    return state


def test_whole_aligned_blocks_bypass_the_page_cache_and_the_tail_does_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "extract.txt.part"
    if not _supports_direct_io(path):
        pytest.skip(f"{tmp_path} has no direct I/O: every write goes through the page cache")
    body = bytes(range(256)) * (40 * BLOCK // 256) + b"tail"  # 40 blocks and 4 bytes
    with PartFile(path) as part:
        state = _receive(part, body, [])
        part.fsync()
    # Only the last page (the 4-byte tail, written through the cache) is resident.
    assert _resident_bytes(path) <= ALIGN
    assert path.read_bytes() == body  # (reading it fills the cache: after the count)
    assert state.body().sha256 == hashlib.sha256(body).hexdigest()


def test_a_resumed_download_realigns_after_its_first_short_block(tmp_path: Path) -> None:
    path = tmp_path / "resumed.part"
    if not _supports_direct_io(path):
        pytest.skip(f"{tmp_path} has no direct I/O")
    body = b"0123456789" * (30 * BLOCK // 10)
    dropped_at = 5 * BLOCK + 1234  # the connection dropped mid-block
    with PartFile(path) as part:
        part.pwrite(memoryview(body[:dropped_at]), 0)
        _receive(part, body, [], resume_at=dropped_at)
        part.fsync()
    # Before the drop through the cache, then one short block up to the next boundary
    # through the cache, then whole blocks past it.
    assert _resident_bytes(path) <= 6 * BLOCK
    assert path.read_bytes() == body


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(min_size=0, max_size=5 * BLOCK + 17),
    pieces=st.lists(st.integers(min_value=1, max_value=2 * BLOCK), max_size=30),
    resume=st.floats(min_value=0, max_value=1),
)
def test_the_file_and_its_hash_are_the_body_whatever_the_reads_return(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, pieces: list[int], resume: float
) -> None:
    path = tmp_path_factory.mktemp("part") / "body.part"
    resume_at = int(len(body) * resume)
    with PartFile(path) as part:
        first = Progress(part)
        first.write(memoryview(body[:resume_at]))
        state = _receive(part, body, pieces, resume_at=resume_at)
        part.fsync()
    assert path.read_bytes() == body
    assert state.received == len(body)
    expected = hashlib.sha256(body[resume_at:]).hexdigest()  # this Progress hashed the rest
    assert state.body().sha256 == expected


def test_start_over_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "again.part"
    with PartFile(path) as part:
        part.pwrite(memoryview(b"x" * ALIGN), 0)
        part.truncate()
        part.pwrite(memoryview(b"new"), 0)
        part.fsync()
    assert path.read_bytes() == b"new"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
