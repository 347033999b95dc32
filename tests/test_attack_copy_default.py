"""Attack pass on the default copy format of ``hotlist pull``: a new copy is
``OUT/hotlist.lines``; a directory already holding a copy keeps its format. Real pulls
from a real uvicorn server into real directories, with hostile or odd contents there."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.serve import consumers as reg
from hotlist.serve.client import Follower, PullError, PullResult, pull
from hotlist.serve.copies import COPY_FILES
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import local_copy, running_api

BASE = [ncic_line(f"V{i:09d}", f"7CPY{i:03d}") for i in range(20)]
GONE = "7CPY000"  # the record version 2 removes


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings("guards = {max_removal_share = 0.5}")


def _publish(settings: Settings, drop: Drop, lines: list[str], day: int) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(lines, stamp=f"2026112{day}0800"))
    ingest_source(settings, "ncic")
    assert purge(settings, None).verification.ok


@pytest.fixture
def api(settings: Settings, drop: Drop) -> Iterator[str]:
    _publish(settings, drop, BASE, 1)
    with running_api(settings) as url:
        yield url


@pytest.fixture
def key(settings: Settings) -> str:
    return reg.add(settings.data_dir, "car-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)


def _pull(api: str, key: str, out: Path, copy_format: str | None = None) -> PullResult:
    return pull(api, key, "car1", "patrol", out, copy_format=copy_format)


def _names(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def _state(out: Path) -> dict[str, object]:
    found = json.loads((out / "state.json").read_text())
    assert isinstance(found, dict)
    return found


def _acked(settings: Settings) -> int | None:
    [consumer] = reg.all_consumers(settings.data_dir)
    return consumer.acked_version


def _older_client_copy(api: str, key: str, out: Path) -> None:
    """A Parquet copy at version 1 with a state.json as an older client wrote it."""
    _pull(api, key, out, "parquet")
    (out / "state.json").write_text('{"version": 1, "acked": true}')


def test_an_older_clients_parquet_copy_stays_parquet_and_takes_deltas(
    api: str, key: str, settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    out = tmp_path / "older"
    _older_client_copy(api, key, out)
    _publish(settings, drop, BASE[1:], 2)
    result = _pull(api, key, out)
    assert (result.version, result.full, result.removals) == (2, False, 1)
    assert _names(out) == ["hotlist.parquet", "state.json"]
    assert GONE not in set(local_copy(out)["plate"])
    assert _state(out)["format"] == "parquet"


def test_both_files_with_an_older_clients_state_keep_parquet_and_scrub_the_other(
    api: str, key: str, tmp_path: Path
) -> None:
    """A state.json naming no format is an older client's, which kept Parquet: the
    stray lines file (a change of format cut short) is scrubbed away."""
    out = tmp_path / "both"
    _older_client_copy(api, key, out)
    stray = out / "hotlist.lines"
    stray.write_bytes(b"x" * 4096)
    held = os.open(stray, os.O_RDONLY)
    try:
        _pull(api, key, out)
        left = os.pread(held, 4096, 0)
    finally:
        os.close(held)
    assert left == bytes(4096)  # overwritten before it was unlinked
    assert _names(out) == ["hotlist.parquet", "state.json"]


def test_switching_formats_back_and_forth_keeps_one_copy_and_the_last_format(
    api: str, key: str, settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    out = tmp_path / "switching"
    assert _pull(api, key, out).full  # new: lines
    assert _names(out) == ["hotlist.lines", "state.json"]
    for n, fmt in enumerate(["parquet", "lines", "parquet"], start=2):
        if n == 3:
            _publish(settings, drop, BASE[1:], 2)
        result = _pull(api, key, out, fmt)
        assert result.full  # a copy of another format has no version to build on
        assert _names(out) == sorted([COPY_FILES[fmt], "state.json"])
    assert _pull(api, key, out).version == 2  # no format asked: the one held, parquet
    assert _names(out) == ["hotlist.parquet", "state.json"]
    assert GONE not in set(local_copy(out)["plate"])
    assert _acked(settings) == 2


def test_the_command_line_default_keeps_the_directorys_format(
    api: str, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "cli"
    _older_client_copy(api, key, out)
    key_file = tmp_path / "key"
    key_file.write_text(key)
    fresh = tmp_path / "cli-new"
    for into in (out, fresh):
        run = CliRunner().invoke(
            app,
            ["pull", "--server", api, "--key-file", str(key_file), "--user", "car1",
             "--purpose", "patrol", "--out", str(into)],
        )  # fmt: skip
        assert run.exit_code == 0, run.output
    assert _names(out) == ["hotlist.parquet", "state.json"]
    assert _names(fresh) == ["hotlist.lines", "state.json"]


@pytest.mark.parametrize("hostile", ['{"version": 1, "format": ["lines"]}', "[" * 100_000])
def test_a_hostile_state_with_both_files_falls_back_to_the_default(
    api: str, key: str, tmp_path: Path, hostile: str
) -> None:
    out = tmp_path / "hostile"
    _pull(api, key, out, "parquet")
    (out / "hotlist.lines").write_bytes(b"")
    (out / "state.json").write_text(hostile)
    result = _pull(api, key, out)
    assert result.full
    assert _names(out) == ["hotlist.lines", "state.json"]


@pytest.mark.parametrize("garbage", ["[1, 2]", '{"version": 1, "acked": tr', "null"])
def test_a_garbled_state_makes_the_next_pull_a_full_version(
    api: str, key: str, tmp_path: Path, garbage: str
) -> None:
    out = tmp_path / "garbled"
    _pull(api, key, out)
    (out / "state.json").write_text(garbage)
    result = _pull(api, key, out)
    assert (result.full, result.version) == (True, 1)
    assert _state(out)["format"] == "lines"


def test_a_state_json_that_is_an_array_with_both_files_is_no_crash_in_format_in(
    tmp_path: Path,
) -> None:
    from hotlist.serve.copies import format_in

    out = tmp_path / "both"
    out.mkdir()
    for name in COPY_FILES.values():
        (out / name).write_bytes(b"")
    for garbage in ("[1]", "null", '"parquet"', "1e999", "{" * 50_000):
        (out / "state.json").write_text(garbage)
        assert format_in(out) == "lines"
    (out / "state.json").unlink()
    (out / "state.json").symlink_to(out / "missing")
    assert format_in(out) == "lines"


def test_a_directory_named_hotlist_parquet_is_no_copy_and_is_left_alone(
    api: str, key: str, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "odd"
    (out / "hotlist.parquet").mkdir(parents=True)
    (out / "hotlist.parquet" / "part-0.parquet").write_bytes(b"not ours")
    result = _pull(api, key, out)
    assert result.full
    assert (out / "hotlist.lines").is_file()
    assert (out / "hotlist.parquet" / "part-0.parquet").read_bytes() == b"not ours"
    assert _acked(settings) == 1


def test_a_symlinked_hotlist_parquet_never_erases_the_file_it_points_to(
    api: str, key: str, settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    """An operator pointed OUT/hotlist.parquet at a file an integration keeps elsewhere
    (an older client's copy it still reads): the pull keeps Parquet, replaces the link
    by its own copy, and leaves the file the link named as it was."""
    source = tmp_path / "older"
    _older_client_copy(api, key, source)
    theirs = tmp_path / "integration" / "list.parquet"
    theirs.parent.mkdir()
    os.replace(source / "hotlist.parquet", theirs)
    before = theirs.read_bytes()
    (source / "hotlist.parquet").symlink_to(theirs)
    _publish(settings, drop, BASE[1:], 2)
    result = _pull(api, key, source)
    assert (result.version, result.removals) == (2, 1)
    assert not (source / "hotlist.parquet").is_symlink()
    assert _names(source) == ["hotlist.parquet", "state.json"]
    assert theirs.read_bytes() == before


def test_a_copy_of_a_format_this_client_does_not_know_is_refused_not_doubled(
    api: str, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "newer"
    out.mkdir()
    (out / "hotlist.arrow").write_bytes(b"a newer client's copy")
    (out / "state.json").write_text('{"version": 1, "acked": true, "format": "arrow"}')
    with pytest.raises(PullError, match="arrow"):
        _pull(api, key, out)
    assert _names(out) == ["hotlist.arrow", "state.json"]


def test_a_follower_keeps_the_format_the_directory_holds_when_it_starts_following(
    api: str, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "followed"
    _pull(api, key, out)  # lines
    seen: list[PullResult] = []
    follower = Follower(api, key, "car1", "patrol", out, wait_s=1, on_pull=seen.append)
    # Meanwhile (the follower waits for the directory's lock): converted to Parquet.
    _pull(api, key, out, "parquet")

    def stop_after_first(result: PullResult) -> None:
        seen.append(result)
        follower.stop()

    follower.on_pull = stop_after_first
    thread = threading.Thread(target=follower.run)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():  # nothing newer: it long-polls (1 s) until stopped
        follower.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert _names(out) == ["hotlist.parquet", "state.json"]
