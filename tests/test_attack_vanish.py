"""Attack pass on the verification of files that vanish while it runs: where the content
of a vanished file can go, and whether the next walk finds it there. Files really move,
vanish, change and link on disk; a function is wrapped only to choose the moment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotlist import verify as verify_module
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import PurgeIncomplete, purge
from hotlist.scan import RAW_HIT, ByteSearch
from hotlist.verify import VANISHED, verify
from tests.builders import Drop, ncic_file, ncic_line

PLATE = "ZQXFMT42"
WIDTH = 64


def _padded(text: str) -> bytes:
    return text.encode().ljust(WIDTH - 1, b".") + b"\n"


def _before_reading(
    monkeypatch: pytest.MonkeyPatch, target: Path, act: Callable[[], None]
) -> list[Path]:
    """Call ``act()`` once, right before the raw search reads ``target`` (files of the
    same batch before it are read by then); the paths read, in order."""
    real = ByteSearch.files
    read: list[Path] = []
    done: list[bool] = []

    def files(self: ByteSearch, paths: list[Path]) -> list[bool | OSError]:
        found: list[bool | OSError] = []
        for path in paths:
            if path == target and not done:
                done.append(True)
                act()
            read.append(path)
            found += real(self, [path])
        return found

    monkeypatch.setattr(ByteSearch, "files", files)
    return read


@pytest.fixture
def exports(store: Settings) -> Path:
    place = store.data_dir / "exports"
    place.mkdir()
    return place


def test_content_folded_into_a_file_already_read_with_its_stamp_kept_is_found(
    store: Settings, exports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``a.txt`` is read clean; then ``b.txt``, holding a removed plate, is copied over
    it in place (``cp -p``: same inode, the source's mtime, here equal to a.txt's old
    one) and removed before its own read. The plate is on disk, in ``a.txt``."""
    kept = exports / "a.txt"
    moving = exports / "b.txt"
    kept.write_bytes(_padded("nothing here"))
    moving.write_bytes(_padded(f"stop {PLATE} on sight"))
    before = kept.stat()
    os.utime(moving, ns=(before.st_atime_ns, before.st_mtime_ns))

    def copy_in_place_then_remove() -> None:
        with open(kept, "r+b") as fh:
            fh.write(moving.read_bytes())
        os.utime(kept, ns=(before.st_atime_ns, before.st_mtime_ns))
        moving.unlink()

    read = _before_reading(monkeypatch, moving, copy_in_place_then_remove)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert kept.read_bytes().startswith(b"stop " + PLATE.encode())  # really there
    assert read.index(kept) < read.index(moving)  # a.txt was read before the move
    assert [(f.place, f.problem) for f in result.findings] == [(str(kept), RAW_HIT)]


def test_a_file_moved_away_during_its_read_and_back_before_the_next_walk_is_searched(
    store: Settings, exports: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A spooler takes a file away while it is read and puts it back unchanged (a rename
    keeps its inode, size and mtime): the read that failed makes the next walk search
    it, whatever its stamp."""
    spooled = exports / "job.txt"
    spooled.write_bytes(_padded(f"stop {PLATE} on sight"))
    aside = tmp_path / "processing" / "job.txt"  # outside every root
    aside.parent.mkdir()
    _before_reading(monkeypatch, spooled, lambda: os.rename(spooled, aside))
    real_walk = verify_module._walk
    walks: list[Path] = []

    def walk(root: Path) -> Iterator[Path]:
        if root == store.data_dir:
            walks.append(root)
            if aside.exists():
                os.rename(aside, spooled)  # put back, unchanged, before the next walk
        yield from real_walk(root)

    monkeypatch.setattr(verify_module, "_walk", walk)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert len(walks) == 2  # walked again for it
    assert spooled.read_bytes().startswith(b"stop " + PLATE.encode())  # back, on disk
    assert [(f.place, f.problem) for f in result.findings] == [(str(spooled), RAW_HIT)]


def test_content_renamed_over_a_file_already_read_is_found_there(
    store: Settings, exports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.replace`` over a file already read gives its name a new inode: searched."""
    kept = exports / "a.txt"
    moving = exports / "b.txt"
    kept.write_bytes(_padded("nothing here"))
    moving.write_bytes(_padded(f"stop {PLATE} on sight"))
    before = kept.stat()
    os.utime(moving, ns=(before.st_atime_ns, before.st_mtime_ns))
    _before_reading(monkeypatch, moving, lambda: os.replace(moving, kept))
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert [(f.place, f.problem) for f in result.findings] == [(str(kept), RAW_HIT)]


def test_content_appended_to_a_file_already_read_is_found_there(
    store: Settings, exports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = exports / "a.txt"
    moving = exports / "b.txt"
    kept.write_bytes(_padded("nothing here"))
    moving.write_bytes(_padded(f"stop {PLATE} on sight"))

    def append_then_remove() -> None:
        with open(kept, "ab") as fh:
            fh.write(moving.read_bytes())
        moving.unlink()

    _before_reading(monkeypatch, moving, append_then_remove)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert [(f.place, f.problem) for f in result.findings] == [(str(kept), RAW_HIT)]


def test_a_hard_link_left_by_a_vanished_file_is_found(
    store: Settings, exports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vanished name's inode lives on under another (new) name: searched there."""
    moving = exports / "b.txt"
    moving.write_bytes(_padded(f"stop {PLATE} on sight"))
    other = store.data_dir / "elsewhere" / "kept-link"
    other.parent.mkdir()

    def link_then_remove() -> None:
        os.link(moving, other)
        moving.unlink()

    _before_reading(monkeypatch, moving, link_then_remove)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert [(f.place, f.problem) for f in result.findings] == [(str(other), RAW_HIT)]


def test_a_file_replaced_by_a_symlink_to_its_content_is_no_pass(
    store: Settings, exports: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Between the walk's stat and the read, a file holding a removed plate becomes a
    symbolic link to that content outside the roots: its read follows the link and
    finds it (never a pass while the content is reachable by the name walked)."""
    moving = exports / "b.txt"
    moving.write_bytes(_padded(f"stop {PLATE} on sight"))
    outside = tmp_path / "outside.txt"

    def replace_by_link() -> None:
        os.replace(moving, outside)
        moving.symlink_to(outside)

    _before_reading(monkeypatch, moving, replace_by_link)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert not result.ok
    assert [f.place for f in result.findings] == [str(moving)]


def test_a_vanished_file_whose_content_went_into_the_access_log_is_found_there(
    store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access log may hold a removed plate only as the queried element: one written
    there (in another field) by whatever removed the vanished file is found in the log."""
    log = store.data_dir / "audit" / "attack-segment.jsonl"
    log.parent.mkdir(exist_ok=True)
    log.write_text(f'{{"element": "{PLATE}", "outcome": "granted"}}\n')
    moving = store.data_dir / "exports" / "b.txt"
    moving.parent.mkdir()
    moving.write_bytes(_padded(f"stop {PLATE} on sight"))

    def log_then_remove() -> None:
        with open(log, "a") as fh:
            fh.write(f'{{"element": "x", "note": "{PLATE}"}}\n')
        moving.unlink()

    _before_reading(monkeypatch, moving, log_then_remove)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert not result.ok
    assert [f.place.split(":")[0] for f in result.findings] == [str(log)]
    assert VANISHED not in [f.problem for f in result.findings]


def test_a_directory_replaced_by_a_file_while_the_walk_lists_it_is_searched_as_a_file(
    store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between its parent's listing and its own, a directory becomes a file of the same
    name: no error; the next walk searches the file."""
    home = store.data_dir.parent / "prefect-home"
    scratch = home / "storage" / "scratch"
    scratch.mkdir(parents=True)
    (scratch / "result.txt").write_text(f"stop {PLATE} on sight\n")
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if str(path) == str(scratch) and scratch.is_dir():
            content = (scratch / "result.txt").read_bytes()
            (scratch / "result.txt").unlink()
            scratch.rmdir()
            scratch.write_bytes(content)  # the same name, now a file
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = verify(store.data_dir, home, [PLATE], pending_ok=True)
    assert [(f.place, f.problem) for f in result.findings] == [(str(scratch), RAW_HIT)]


NAMES = ['a "quoted" name.txt', "line\nbreak.txt", "  spaced  .txt", "it's.txt"]


@pytest.mark.parametrize("name", [*NAMES, "latin1-\udce9.txt"])
def test_a_vanished_file_of_any_name_is_no_finding_and_its_content_is_found_by_name(
    store: Settings, exports: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Names with quotes, newlines, spaces and bytes that are not UTF-8 (``\\udce9``:
    the byte 0xE9, as Python names it) vanish and are found like any other."""
    gone = exports / f"gone-{name}"
    gone.write_bytes(_padded("nothing here"))
    moving = exports / f"moving-{name}"
    moving.write_bytes(_padded(f"stop {PLATE} on sight"))
    landed = exports / f"landed-{name}"

    def churn() -> None:
        gone.unlink()
        os.replace(moving, landed)

    _before_reading(monkeypatch, gone, churn)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert [(f.place, f.problem) for f in result.findings] == [(str(landed), RAW_HIT)]


def test_a_thousand_churned_files_are_walked_again_at_most_three_times(
    store: Settings, exports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two thousand files, every one removed before its read: content of one found where
    it went; the rest held nothing. A thousand names recreated and removed again on
    every walk are each one finding once the walks run out."""
    for n in range(2000):
        (exports / f"spool-{n:05d}.txt").write_bytes(_padded(f"spool {n}"))
    (exports / "spool-00007.txt").write_bytes(_padded(f"stop {PLATE} on sight"))
    landed = store.data_dir / "landed.txt"
    real_walk = verify_module._walk
    walks: list[int] = []

    def walk(root: Path) -> Iterator[Path]:
        if root != store.data_dir:  # the transient areas, walked once first
            yield from real_walk(root)
            return
        walks.append(1)
        if len(walks) > 1:  # the churning thousand: back for each walk, gone before read
            for n in range(1000):
                (exports / f"churn-{n:05d}.txt").write_bytes(_padded(f"churn {n} {len(walks)}"))
        yield from real_walk(root)

    def churn() -> None:
        os.replace(exports / "spool-00007.txt", landed)
        for path in exports.iterdir():
            path.unlink()

    monkeypatch.setattr(verify_module, "_walk", walk)
    _before_reading(monkeypatch, exports / "spool-00000.txt", churn)
    real_files = ByteSearch.files

    def files(self: ByteSearch, paths: list[Path]) -> list[bool | OSError]:
        for path in paths:
            if path.name.startswith("churn-"):
                path.unlink(missing_ok=True)
        return real_files(self, paths)

    monkeypatch.setattr(ByteSearch, "files", files)
    result = verify(store.data_dir, None, [PLATE], pending_ok=True)
    assert len(walks) == verify_module.PASSES
    assert (str(landed), RAW_HIT) in [(f.place, f.problem) for f in result.findings]
    churned = [f for f in result.findings if f.problem == VANISHED]
    assert len(churned) == 1000
    assert len(result.findings) == 1001


# -- the purge over it ---------------------------------------------------------------


def test_the_purge_passes_when_a_file_vanishes_and_fails_when_content_lands_elsewhere(
    make_settings: Callable[..., Settings], drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real removal (version 2 drops a record): a spool file that vanishes during the
    purge's verification leaves it passing; one whose copy of the removed plate lands
    under an odd, non-UTF-8 name fails it, and the failure names that place."""
    store = make_settings("guards = {max_removal_share = 0.5}")
    removed = "7GONE001"
    drop.put(
        "VEHEXTRT.txt",
        ncic_file([ncic_line("V000000001", "7KEEP001"), ncic_line("V000000002", removed)],
                  stamp="202611230800"),
    )  # fmt: skip
    ingest_source(store, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7KEEP001")], "202611240800"))
    ingest_source(store, "ncic")
    spool = store.data_dir / "spool"
    spool.mkdir()
    moving = spool / "job.txt"
    moving.write_bytes(_padded(f"stop {removed} on sight"))
    landed = spool / 'done-\udce9 "x"\n.txt'
    _before_reading(monkeypatch, moving, lambda: os.replace(moving, landed))
    with pytest.raises(PurgeIncomplete) as failed:
        purge(store, None)
    assert [(f.place, f.problem) for f in failed.value.verification.findings] == [
        (str(landed), RAW_HIT)
    ]
    landed.unlink()
    moving.write_bytes(_padded("nothing here"))
    _before_reading(monkeypatch, moving, moving.unlink)
    passed = purge(store, None)
    assert passed.verification.ok, passed.verification.findings
