"""``[purge] raw_device``: the purge also searches a block device (or image) for the
content of the records it is about to mark purged, and fails on a hit naming where."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import PurgeIncomplete, purge
from hotlist.raw_device import physical_extents
from tests.builders import Drop, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(40)]
REMOVED = "ZQXRAW01"


def _day1_day2(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000001", REMOVED)]))
    ingest_source(settings, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")


def _image(path: Path, planted_at: int | None) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(40 << 20)
        if planted_at is not None:
            fh.seek(planted_at)
            fh.write(f"deleted long ago: {REMOVED}".encode())
    return path


def test_a_purge_with_a_clean_raw_device_passes_and_marks(
    relaxed: Settings, drop: Drop, tmp_path: Path
) -> None:
    _day1_day2(relaxed, drop)
    result = purge(relaxed, None, raw_device=_image(tmp_path / "disk.img", None))
    assert (result.purged, result.verification.ok, result.verification.markers) == (1, True, 1)


def test_a_removed_plate_in_the_raw_device_fails_the_purge_naming_the_offset(
    relaxed: Settings, drop: Drop, tmp_path: Path
) -> None:
    _day1_day2(relaxed, drop)
    offset = (17 << 20) - 11  # across a read block's boundary
    image = _image(tmp_path / "disk.img", offset)
    for _ in range(2):  # and the next purge still searches for it
        with pytest.raises(PurgeIncomplete) as failed:
            purge(relaxed, None, raw_device=image)
        [finding] = failed.value.verification.findings
        assert finding.place == str(image)
        assert f"at 1 offsets (first: {offset + len('deleted long ago: ')})" in finding.problem


def test_the_extents_left_out_of_the_search_are_where_the_file_really_is(
    ext4: tuple[Path, Path],
) -> None:
    mount, image = ext4
    data = os.urandom(3 << 20)
    path = mount / "source.duckdb"
    path.write_bytes(data)
    extents = physical_extents(path)
    assert sum(end - start for start, end in extents) >= len(data)
    subprocess.run(["sync"], check=True)
    with open(image, "rb") as fh:
        read = b""
        for start, end in extents:
            fh.seek(start)
            read += fh.read(end - start)
    assert read[: len(data)] == data


def test_the_raw_device_is_read_from_the_configuration(drop: Drop, tmp_path: Path) -> None:
    from hotlist.config import load_settings

    image = _image(tmp_path / "disk.img", 5 << 20)
    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[purge]\nraw_device = "{image}"\n'
        f'[sources.ncic]\nurl = "file://{drop.root}"\nguards = {{max_removal_share = 0.5}}\n'
    )
    settings = load_settings(config, environ={})
    _day1_day2(settings, drop)
    with pytest.raises(PurgeIncomplete) as failed:
        purge(settings, None)
    assert [f.place for f in failed.value.verification.findings] == [str(image)]
