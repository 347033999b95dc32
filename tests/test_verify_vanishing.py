"""Files that vanish while the verification runs: a running server's SQLite ``-wal`` and
``-shm`` come and go, a journal segment is shipped and removed. A file gone between the
walk and its read is not a failure by itself, but what it held may now be elsewhere:
the roots are walked again and every new or changed file searched. The files here really
vanish and move on disk; the walk is only wrapped to choose the moment."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotlist import verify as verify_module
from hotlist.config import Settings
from hotlist.scan import RAW_HIT
from hotlist.verify import VANISHED, verify

PLATE = "ZQXFMT42"


def _after_walking_past(
    monkeypatch: pytest.MonkeyPatch, target: Path, act: Callable[[int], None]
) -> list[int]:
    """Call ``act(walk number)`` right after each walk has stat'ed and routed ``target``
    (so before its read): the walk asks for the next file only then."""
    real = verify_module._walk
    walks: list[int] = []

    def walk(root: Path) -> Iterator[Path]:
        if root == target.parent.parent:
            walks.append(len(walks) + 1)
        for path in real(root):
            yield path
            if path == target:
                act(len(walks))

    monkeypatch.setattr(verify_module, "_walk", walk)
    return walks


def test_a_file_removed_before_its_read_is_no_finding(
    store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = store.data_dir / "serve" / "last_seen.sqlite-shm"
    wal.parent.mkdir(exist_ok=True)
    wal.write_bytes(b"\0" * 4096)
    walks = _after_walking_past(monkeypatch, wal, lambda _: wal.unlink(missing_ok=True))
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert result.ok, result.findings
    assert walks == [1, 2]  # walked again, once, to find where its content went


def test_content_moved_to_a_new_name_during_the_search_is_found_there(
    store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = store.data_dir / "exports" / "batch.txt"
    after = store.data_dir / "exports" / "batch.done.txt"
    before.parent.mkdir()
    before.write_text(f"stop {PLATE} on sight\n")

    def move(walk: int) -> None:
        if walk == 1:
            before.rename(after)

    _after_walking_past(monkeypatch, before, move)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert [(f.place, f.problem) for f in result.findings] == [(str(after), RAW_HIT)]


def test_a_file_that_vanishes_on_every_walk_is_a_finding(
    store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    churn = store.data_dir / "exports" / "churn.txt"
    churn.parent.mkdir()
    churn.write_text("x\n")

    def recreate_and_remove(_: int) -> None:
        churn.unlink()

    real = verify_module._walk
    made = [1]

    def walk(root: Path) -> Iterator[Path]:
        if root == store.data_dir and not churn.exists():
            made.append(len(made) + 1)  # back for each walk (new), gone again before its read
            churn.write_text("x" * made[-1])
        yield from real(root)

    monkeypatch.setattr(verify_module, "_walk", walk)
    _after_walking_past(monkeypatch, churn, recreate_and_remove)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert [(f.place, f.problem) for f in result.findings] == [(str(churn), VANISHED)]


def test_content_found_in_a_file_removed_after_its_read_stays_a_finding(
    store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file merely unlinked leaves its bytes in the disk's free blocks: what its read
    found is still the finding, not a vanished file."""
    packed = store.data_dir / "exports" / "batch.txt.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(f"stop {PLATE} on sight\n".encode()))
    real = verify_module._search_file

    def search_then_remove(path: Path, *args: Any) -> None:
        real(path, *args)
        if path == packed:
            packed.unlink()

    monkeypatch.setattr(verify_module, "_search_file", search_then_remove)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert [f.place for f in result.findings] == [str(packed)]
    assert result.findings[0].problem != VANISHED


def test_a_directory_removed_while_the_walk_lists_it_is_walked_for_again(
    store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running Prefect server removes directories of its own under PREFECT_HOME: one
    gone between its parent's listing and its own is no error, and the roots are walked
    again; content moved out of it is found where it went."""
    home = store.data_dir.parent / "prefect-home"
    scratch = home / "storage" / "scratch"
    scratch.mkdir(parents=True)
    (scratch / "result.txt").write_text(f"stop {PLATE} on sight\n")
    kept = home / "storage" / "kept.txt"
    real = os.scandir
    listings: list[str] = []

    def scandir(path: Any = ".") -> Any:
        listings.append(str(path))
        if str(path) == str(scratch) and scratch.exists():
            (scratch / "result.txt").rename(kept)
            scratch.rmdir()
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = verify(store.data_dir, home, [PLATE], pending_ok=True)
    assert [(f.place, f.problem) for f in result.findings] == [(str(kept), RAW_HIT)]
    assert listings.count(str(home)) == 2  # walked again
