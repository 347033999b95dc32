"""A file is "unchanged upstream" only by its content (sha256), never by size and mtime;
a ``.sha256`` companion saves the copy and refuses a cut file (file:// sources, through
the ingest; the SFTP source's own tests are in tests/sftp)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from hotlist.config import Settings
from hotlist.ingest import acquire, ingest_source
from hotlist.lookup import find_hits
from hotlist.sources import FetchError, FetchFailure, Unchanged
from hotlist.store.apply import ApplyResult
from hotlist.store.state import read_state
from tests.builders import Drop, ncic_file, ncic_line


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_rewritten_with_the_same_size_and_mtime_is_applied(
    settings: Settings, drop: Drop
) -> None:
    """Its removals apply: it is not reported as "nothing new upstream"."""
    kept = [ncic_line(f"V{i:09d}", f"7KPT{i:03d}") for i in range(2, 40)]
    path = drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7OLD001"), *kept]))
    ingest_source(settings, "ncic")
    before = path.stat()
    path.write_text(ncic_file([ncic_line("V000000001", "7NEW001"), *kept], stamp="202611230800"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size

    [outcome] = ingest_source(settings, "ncic")

    assert isinstance(outcome, ApplyResult) and outcome.verdict == "applied"
    assert (outcome.removed, outcome.added) == (1, 1)
    assert find_hits(settings.data_dir, "7OLD001") == []
    assert [h.record_id for h in find_hits(settings.data_dir, "7NEW001")] == ["V000000001"]


def test_the_same_bytes_again_are_unchanged_and_leave_no_landing_copy(
    settings: Settings, drop: Drop
) -> None:
    data = ncic_file([ncic_line("V000000001", "7ABC001")])
    drop.put("VEHEXTRT.txt", data)
    ingest_source(settings, "ncic")
    drop.put("VEHEXTRT.txt", data)  # republished: new mtime, same content

    assert acquire(settings, "ncic") == [Unchanged("ncic", "VEHEXTRT.txt")]
    assert list((settings.data_dir / "landing").rglob("VEHEXTRT*")) == []
    assert read_state(settings.data_dir)["feeds"]["ncic"]["version"] == 1


def test_a_companion_naming_the_file_taken_last_spares_the_copy(
    settings: Settings, drop: Drop
) -> None:
    """The file is not read: had it been, its new bytes would not match the companion."""
    data = ncic_file([ncic_line("V000000001", "7ABC001")]).encode()
    path = drop.put("VEHEXTRT.txt", data)
    drop.put("VEHEXTRT.txt.sha256", f"{_sha256(data)}  VEHEXTRT.txt\n")
    ingest_source(settings, "ncic")
    path.write_bytes(data.replace(b"7ABC001", b"7ABC002"))

    assert acquire(settings, "ncic") == [Unchanged("ncic", "VEHEXTRT.txt")]


def test_a_file_cut_at_a_line_boundary_is_refused_by_its_companion(
    settings: Settings, drop: Drop
) -> None:
    lines = [ncic_line(f"V{i:09d}", f"7CUT{i:03d}") for i in range(100)]
    whole = ncic_file(lines).encode()
    cut = ncic_file(lines[:96]).encode()
    drop.put("VEHEXTRT.txt", cut)
    drop.put("VEHEXTRT.txt.sha256", f"{_sha256(whole)}\n")

    with pytest.raises(FetchError) as caught:
        ingest_source(settings, "ncic")

    assert caught.value.kind is FetchFailure.CHECKSUM_MISMATCH
    assert read_state(settings.data_dir)["feeds"]["ncic"]["version"] is None


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "dangling"])
def test_a_symbolic_link_to_something_not_a_file_says_what_it_is(
    settings: Settings, drop: Drop, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "target"
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        target = Path("/dev/null")
    (drop.root / "VEHEXTRT.txt").symlink_to(target)
    opened = threading.Event()
    if kind == "fifo":  # a reader that opened the FIFO would block: unblock it, then fail
        threading.Thread(target=lambda: _unblock(target, opened), daemon=True).start()

    with pytest.raises(FetchError) as caught:
        acquire(settings, "ncic")

    expected = {
        "directory": ("not-a-file", "is a directory (through a symbolic link)"),
        "fifo": ("not-a-file", "is a FIFO (named pipe) (through a symbolic link)"),
        "device": ("not-a-file", "is a character device (through a symbolic link)"),
        "dangling": ("not-found", "is a symbolic link whose target does not exist"),
    }[kind]
    assert caught.value.kind.value == expected[0]
    assert expected[1] in str(caught.value)
    assert not opened.is_set(), "the FIFO was opened for reading"


def _unblock(fifo: Path, opened: threading.Event) -> None:
    import time

    time.sleep(2)
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader: nobody opened it
    opened.set()
    os.close(fd)
