"""The lines copy (``hotlist pull --copy-format lines``): fixed-width slots, each delta
written in place, a removed record's bytes overwritten where they lay."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotlist.serve import client, copy_lines
from hotlist.serve.client import PullError
from hotlist.serve.copies import CopyUnreadable, ParquetCopy, format_in
from hotlist.serve.copy_lines import LinesCopy, read_layout, read_lines, scan

SCHEMA = {
    "entry_id": pl.Int64,
    "feed": pl.String,
    "plate": pl.String,
    "state": pl.String,
    "record_date": pl.Date,
    "vehicle_year": pl.Int16,
    "model": pl.String,
}


def entries(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


DAY = dt.date(2026, 11, 30)
VERSION_1 = entries(
    [
        (11, "ncic", "1ABC123", "CA", DAY, 2004, "CIV"),
        (12, "ncic", "2DEF456", "CA", DAY, None, None),
        (13, "svs", "3GHI789", "NV", DAY, 2019, "F15"),
    ]
)


def held(copy: LinesCopy) -> list[tuple[object, ...]]:
    return sorted(read_lines(copy.path).rows())


def test_a_full_version_becomes_fixed_width_slots_with_the_servers_types(tmp_path: Path) -> None:
    copy = LinesCopy(tmp_path / "patrol 'car' \"12\" copy")  # quotes and spaces: no shell
    assert copy.apply_full(parquet(VERSION_1), 1) == 3
    assert LinesCopy(copy.out).version == 1
    frame = read_lines(copy.path)
    assert dict(frame.schema) == SCHEMA
    assert sorted(frame.rows()) == sorted(VERSION_1.rows())
    data = copy.path.read_bytes()
    layout = read_layout(data)
    assert 4096 % layout.record_bytes == 0 and layout.header_bytes % layout.record_bytes == 0
    slots = data[layout.header_bytes :]
    assert len(slots) == 3 * layout.record_bytes
    assert all(len(line) == layout.record_bytes - 1 for line in slots.split(b"\n")[:-1])
    assert oct(copy.path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(copy.state_file.read_text())["format"] == "lines"


def test_a_delta_is_written_in_place_and_the_removed_record_leaves_no_byte(
    tmp_path: Path,
) -> None:
    copy = LinesCopy(tmp_path / "copy")
    copy.apply_full(parquet(VERSION_1), 1)
    inode, size = copy.path.stat().st_ino, copy.path.stat().st_size
    fresh = entries(
        [
            (13, "svs", "3GHI789", "NV", DAY, 2019, "F15"),
            (14, "ncic", "7XYZ000", "AZ", DAY, 2001, "ACC"),
        ]
    )
    assert copy.apply_delta(pl.Series([12]), fresh, 2) == 3
    assert held(copy) == sorted([VERSION_1.row(0), *fresh.rows()])
    assert (copy.path.stat().st_ino, copy.path.stat().st_size) == (inode, size)  # in place
    for path in copy.out.iterdir():
        assert b"2DEF456" not in path.read_bytes()
    assert json.loads(copy.state_file.read_text()) == {
        "version": 2,
        "acked": False,
        "format": "lines",
    }


def test_a_removal_without_an_addition_leaves_a_blank_slot_readers_skip(tmp_path: Path) -> None:
    copy = LinesCopy(tmp_path / "copy")
    copy.apply_full(parquet(VERSION_1), 1)
    copy.apply_delta(pl.Series([11, 13]), VERSION_1.clear(), 2)
    layout = read_layout(copy.path.read_bytes())
    slots = copy.path.read_bytes()[layout.header_bytes :]
    blank = b" " * (layout.record_bytes - 1) + b"\n"
    assert [
        slots[i : i + layout.record_bytes] == blank
        for i in range(0, len(slots), layout.record_bytes)
    ] == [True, False, True]
    assert held(copy) == [VERSION_1.row(1)]
    added = entries([(15, "ncic", "8NEW111", "CA", DAY, None, None)])
    copy.apply_delta(pl.Series([], dtype=pl.Int64), added, 3)  # takes a free slot
    assert len(copy.path.read_bytes()) == layout.header_bytes + 3 * layout.record_bytes
    assert held(copy) == sorted([VERSION_1.row(1), added.row(0)])


def test_a_value_wider_than_its_column_rewrites_the_copy_and_scrubs_the_old_one(
    tmp_path: Path,
) -> None:
    copy = LinesCopy(tmp_path / "copy")
    copy.apply_full(parquet(VERSION_1), 1)
    fd = os.open(copy.path, os.O_RDONLY)  # the file about to be replaced
    try:
        wide = entries([(16, "ncic", "9WIDE99", "CA", DAY, None, "A MODEL FAR WIDER THAN THREE")])
        copy.apply_delta(pl.Series([12]), wide, 2)
        old = os.pread(fd, 1 << 16, 0)
    finally:
        os.close(fd)
    assert old.strip(b"\0") == b""  # every byte of the old file overwritten
    assert held(copy) == sorted([VERSION_1.row(0), VERSION_1.row(2), wide.row(0)])
    assert sorted(p.name for p in copy.out.iterdir()) == ["hotlist.lines", "state.json"]
    assert LinesCopy(copy.out).version == 2  # the wider copy opens as a whole one


def test_values_outside_ascii_are_padded_in_bytes(tmp_path: Path) -> None:
    copy = LinesCopy(tmp_path / "copy")
    copy.apply_full(parquet(VERSION_1), 1)
    accented = entries([(17, "ncic", "ÉÉ1", "CA", DAY, None, "Ñ")])
    copy.apply_delta(pl.Series([], dtype=pl.Int64), accented, 2)
    assert held(copy) == sorted([*VERSION_1.rows(), accented.row(0)])
    assert LinesCopy(copy.out).version == 2


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sets(st.integers(1, 40), max_size=8),  # removed ids
            st.dictionaries(  # upserted ids and their plates
                st.integers(1, 40),
                st.text(st.sampled_from("ABC123 ÉŁ"), min_size=1, max_size=14)
                .map(str.strip)
                .filter(bool),
                max_size=8,
            ),
        ),
        max_size=6,
    )
)
def test_any_sequence_of_deltas_leaves_exactly_what_a_model_holds(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[set[int], dict[int, str]]],
) -> None:
    out = tmp_path_factory.mktemp("copy")
    model = {i: f"P{i}" for i in range(1, 21)}

    def frame(rows: dict[int, str]) -> pl.DataFrame:
        return entries([(i, "ncic", p, "CA", DAY, None, None) for i, p in sorted(rows.items())])

    copy = LinesCopy(out)
    copy.apply_full(parquet(frame(model)), 1)
    for version, (removed, upserted) in enumerate(steps, start=2):
        removed = removed - upserted.keys()
        gone = pl.Series([i for i in removed if i in model], dtype=pl.Int64)
        copy.apply_delta(gone, frame(upserted), version)
        for i in removed:
            model.pop(i, None)
        model.update(upserted)
        assert held(copy) == sorted(frame(model).rows())
        reopened = LinesCopy(out)  # the index built from the file agrees with the one kept
        assert reopened.version == version
        assert sorted(reopened._open.index["entry_id"].to_list()) == sorted(model)  # type: ignore[union-attr]
        copy = reopened


def test_a_copy_killed_while_a_delta_is_written_is_replaced_by_a_full_version(
    tmp_path: Path,
) -> None:
    out = tmp_path / "copy"
    LinesCopy(out).apply_full(parquet(VERSION_1), 1)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MIDWAY, str(out)], capture_output=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    assert "applying" in json.loads((out / "state.json").read_text())
    copy = LinesCopy(out)
    assert copy.version is None  # not trusted: the next pull asks for a full version
    copy.apply_full(parquet(VERSION_1), 3)
    assert held(copy) == sorted(VERSION_1.rows())
    assert sorted(p.name for p in out.iterdir()) == ["hotlist.lines", "state.json"]


KILLED_MIDWAY = """
import mmap, os, signal, sys
from pathlib import Path
import polars as pl
from hotlist.serve import copy_lines
copy = copy_lines.LinesCopy(Path(sys.argv[1]))
class KilledAfterOneSlot(mmap.mmap):
    def __setitem__(self, where, data):
        super().__setitem__(where, data)
        os.kill(os.getpid(), signal.SIGKILL)
copy_lines.mmap.mmap = KilledAfterOneSlot
assert copy._open is not None
copy.apply_delta(pl.Series([11, 12, 13]), pl.DataFrame(schema=copy._open.layout.schema), 2)
"""


@pytest.mark.parametrize(
    "damage",
    [
        "cut inside a slot",
        "a free slot not blank",
        "an id twice",
        "not a header",
        "an id not a number",
    ],
)
def test_a_copy_that_is_not_whole_is_not_trusted_and_the_log_holds_no_record_content(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    copy = LinesCopy(tmp_path / "copy")
    copy.apply_full(parquet(VERSION_1), 1)
    data = bytearray(copy.path.read_bytes())
    layout = read_layout(bytes(data))
    first, second = layout.header_bytes, layout.header_bytes + layout.record_bytes
    if damage == "cut inside a slot":
        data = data[:-5]
    elif damage == "a free slot not blank":
        data[first : first + 20] = b" " * 20  # the id blank, the plate still there
    elif damage == "an id twice":
        data[second : second + 20] = data[first : first + 20]
    elif damage == "not a header":
        data[0:1] = b"["
    else:
        data[first : first + 7] = b"1ABC123"
    copy.path.write_bytes(bytes(data))
    with pytest.raises(CopyUnreadable):
        scan(copy.path)
    with caplog.at_level(logging.WARNING, logger="hotlist.pull"):
        assert LinesCopy(copy.out).version is None
    assert "not whole" in caplog.text
    for plate in ("1ABC123", "2DEF456", "3GHI789"):
        assert plate not in caplog.text


def test_a_directory_that_changes_format_keeps_no_copy_of_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "copy"
    parquet_copy = ParquetCopy(out)
    parquet_copy.apply_full(parquet(VERSION_1), 1)
    fd = os.open(parquet_copy.path, os.O_RDONLY)
    try:
        lines = LinesCopy(out)
        assert lines.version is None  # a Parquet copy's version is not a lines copy's
        lines.apply_full(parquet(VERSION_1), 2)
        old = os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)
    assert old.strip(b"\0") == b""
    assert sorted(p.name for p in out.iterdir()) == ["hotlist.lines", "state.json"]
    back = ParquetCopy(out)
    assert back.version is None
    back.apply_full(parquet(VERSION_1), 3)
    assert sorted(p.name for p in out.iterdir()) == ["hotlist.parquet", "state.json"]


def test_a_delta_with_a_new_column_rewrites_the_copy_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy_lines, "BATCH_ROWS", 2)  # three entries: two batches
    copy = LinesCopy(tmp_path / "copy")
    copy.apply_full(parquet(VERSION_1), 1)
    added = entries([(18, "ncic", "4JKL012", "CA", DAY, 2020, "WIDER THAN ANY MODEL")])
    added = added.with_columns(pl.lit("BLK", pl.String).alias("colour"))
    copy.apply_delta(pl.Series([11]), added, 2)
    copy_after = read_lines(copy.path)
    assert copy_after.columns == [*SCHEMA, "colour"]
    assert sorted(copy_after.rows()) == sorted(
        [(*VERSION_1.row(1), None), (*VERSION_1.row(2), None), added.row(0)]
    )
    assert LinesCopy(copy.out).version == 2


def test_a_version_with_a_column_no_slot_can_hold_ends_the_pull_with_what_to_do(
    tmp_path: Path,
) -> None:
    copy = LinesCopy(tmp_path / "copy")
    copy.apply_full(parquet(VERSION_1), 1)
    flagged = VERSION_1.with_columns(pl.lit(True).alias("armed"))
    response = httpx.Response(
        200,
        content=parquet(flagged),
        headers={"X-Hotlist-Version": "2", "X-Hotlist-Full": "true"},
    )
    with pytest.raises(PullError, match=r"--copy-format parquet") as raised:
        client._apply(copy, response)
    assert "armed" in str(raised.value)
    assert LinesCopy(copy.out).version == 1  # the copy keeps what it had
    assert held(copy) == sorted(VERSION_1.rows())


def test_a_new_copy_is_kept_as_lines_and_an_existing_one_keeps_its_format(tmp_path: Path) -> None:
    """The default format: lines for a directory without a copy (its apply follows the
    delta); the file a directory already holds otherwise, so an integration that reads
    an older client's ``hotlist.parquet`` keeps finding it."""
    assert format_in(tmp_path / "new") == "lines"
    older = tmp_path / "older"
    ParquetCopy(older).apply_full(parquet(VERSION_1), 1)
    (older / "state.json").write_text('{"version": 1, "acked": true}')  # no format named
    assert format_in(older) == "parquet"
    assert client.copy_class(older, None) is ParquetCopy
    kept = tmp_path / "kept"
    LinesCopy(kept).apply_full(parquet(VERSION_1), 1)
    assert format_in(kept) == "lines"
    # Both files (a change of format cut short): state.json names the one in progress.
    (kept / "hotlist.parquet").write_bytes(parquet(VERSION_1))
    assert format_in(kept) == "lines"
    (kept / "state.json").write_text("not json")
    assert format_in(kept) == "lines"
    assert client.copy_class(kept, "parquet") is ParquetCopy  # asked for: as asked
