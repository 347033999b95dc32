"""A bad file is refused whole with a message that says what is true of it; a doubtful
line is loaded with a warning that is counted (docs/formats.md section 4)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from hotlist.config import Settings
from hotlist.ingest import IngestFailed, ingest_source
from hotlist.layout import load_layout
from hotlist.parse import FileRejected, parse_file
from hotlist.store import control_path
from hotlist.store.apply import ApplyResult
from hotlist.wholefile import CLOCK_TOLERANCE
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line

NOW = dt.datetime(2026, 11, 22, 20, 0, tzinfo=dt.UTC)  # 12:00 in California
GOOD = [ncic_line("V000000001", "7ABC123"), ncic_line("V000000002", "8XYZ999")]


def _refusal(path: Path, layout: str = "ncic-fixed", now: dt.datetime = NOW) -> FileRejected:
    with pytest.raises(FileRejected) as refused:
        parse_file(path, load_layout(layout), "ncic", None, frozenset("V"), NOW, now=now)
    return refused.value


# --- the source's clock ------------------------------------------------------------------


def test_a_header_time_later_than_now_is_refused_naming_file_time_and_now(
    tmp_path: Path,
) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text(ncic_file(GOOD, stamp="209901010000"))
    refused = _refusal(path)
    assert refused.rule == "extract-time-future"
    message = str(refused)
    assert message.startswith("VEHEXTRT.txt line 1: header time 2099-01-01T00:00:00-08:00")
    assert NOW.isoformat() in message
    assert "7ABC123" not in message


def test_a_header_time_within_the_clock_tolerance_is_accepted(tmp_path: Path) -> None:
    """12:10 in California, read at 12:00: a source's clock a little ahead is no fault."""
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text(ncic_file(GOOD, stamp="202611221210"))
    assert dt.timedelta(minutes=10) < CLOCK_TOLERANCE
    parsed = parse_file(path, load_layout("ncic-fixed"), "ncic", None, frozenset("V"), NOW, now=NOW)
    assert parsed.entries.height == 2


def test_a_modification_time_later_than_now_is_refused_when_there_is_no_header(
    tmp_path: Path,
) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text("\n".join(GOOD) + "\n")
    future = NOW + dt.timedelta(days=3)
    with pytest.raises(FileRejected) as refused:
        parse_file(path, load_layout("ncic-fixed"), "ncic", None, frozenset("V"), future, now=NOW)
    assert refused.value.rule == "extract-time-future"
    assert "modification time (no header)" in str(refused.value)


def test_a_future_dated_file_is_refused_and_does_not_block_the_real_files_after_it(
    settings: Settings, drop: Drop
) -> None:
    """Applied, a file dated 2099 made every real file after it a "replay"."""
    drop.put("VEHEXTRT.txt", ncic_file(GOOD, stamp="209901010000"))
    with pytest.raises(IngestFailed) as failed:
        ingest_source(settings, "ncic")
    [rejection] = failed.value.rejections
    assert rejection.rule == "extract-time-future"
    drop.put("VEHEXTRT.txt", ncic_file(GOOD, stamp="202611220800"))
    [applied] = ingest_source(settings, "ncic")
    assert isinstance(applied, ApplyResult) and applied.entries == 2


# --- messages that say what is true of a file ----------------------------------------------


def test_an_empty_file_is_reported_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_bytes(b"")
    refused = _refusal(path)
    assert (refused.rule, str(refused)) == (
        "empty-file",
        "VEHEXTRT.txt: the file is empty (0 bytes)",
    )


@pytest.mark.parametrize(
    ("encoding", "named"),
    [
        ("utf-16", "UTF-16 (little-endian) text (byte order mark ff fe)"),
        ("utf-16-be", "NUL"),
        ("utf-32", "UTF-32 (little-endian)"),
    ],
)
def test_a_utf16_or_utf32_file_is_reported_as_its_encoding(
    tmp_path: Path, encoding: str, named: str
) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_bytes(ncic_file(GOOD).encode(encoding))
    refused = _refusal(path)
    assert refused.rule == "encoding"
    assert named in str(refused)
    assert "cut short" not in str(refused)


def test_a_file_with_cr_only_line_ends_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_bytes(ncic_file(GOOD).replace("\n", "\r").encode())
    refused = _refusal(path)
    assert refused.rule == "line-ends"
    assert "lines end with CR alone" in str(refused)
    assert "cut short" not in str(refused)


def test_a_file_cut_inside_a_line_is_reported_as_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text(ncic_file(GOOD)[:-20])
    refused = _refusal(path)
    assert refused.rule == "incomplete-last-line"
    assert "the file was cut short" in str(refused)


def test_a_byte_order_mark_before_the_header_is_not_part_of_it(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_bytes(b"\xef\xbb\xbf" + ncic_file(GOOD, stamp="202611220800").encode())
    parsed = parse_file(path, load_layout("ncic-fixed"), "ncic", None, frozenset("V"), NOW, now=NOW)
    assert parsed.extract_time == dt.datetime(2026, 11, 22, 16, 0, tzinfo=dt.UTC)
    assert (parsed.record_lines, parsed.entries.height) == (2, 2)


# --- lines too long, dates in the future: warned and counted -------------------------------


def _warnings(path: Path, layout: str, feed: str, feed_list: str | None) -> list[tuple[int, str]]:
    parsed = parse_file(path, load_layout(layout), feed, feed_list, frozenset("V"), NOW, now=NOW)
    assert parsed.quarantine.height == 0
    return [(r[0], r[2]) for r in parsed.issues.rows()]


def test_an_over_long_fixed_width_ncic_line_loads_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    long_line = ncic_line("V000000003", "7LON333", colour="BLK/WHI") + "EXTRA"
    path.write_text(ncic_file([*GOOD, long_line, GOOD[0].replace("V000000001", "V000000004")]))
    assert _warnings(path, "ncic-fixed", "ncic", None) == [(4, "line.too_long")]


def test_trailing_blanks_do_not_make_a_line_too_long(tmp_path: Path) -> None:
    path = tmp_path / "svs.tbl"
    path.write_text(clew_file([clew_line("7ABC123") + "   "]))
    assert _warnings(path, "clew-svs", "svs", "stolen_vehicle") == []


def test_an_over_long_clew_line_loads_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "svs.tbl"
    path.write_text(clew_file([clew_line("7ABC123"), clew_line("8XYZ999") + "X"]))
    assert _warnings(path, "clew-svs", "svs", "stolen_vehicle") == [(3, "line.too_long")]


def test_a_record_dated_after_tomorrow_loads_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text(
        ncic_file(
            [
                ncic_line("V000000001", "7ABC123", date="20261123"),  # tomorrow: a time zone
                ncic_line("V000000002", "8XYZ999", date="20261124"),
                ncic_line("V000000003", "9FUT999", date="20990101"),
            ]
        )
    )
    assert _warnings(path, "ncic-fixed", "ncic", None) == [
        (3, "record_date.future"),
        (4, "record_date.future"),
    ]


def test_over_long_lines_and_future_dates_are_counted_as_warnings_of_the_file(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings(svs='files = {svs = "svs.tbl"}')
    lines = [
        clew_line("7ABC123"),
        clew_line("8XYZ999") + "X",
        clew_line("9FUT999", date="20990101"),
    ]
    path = drop.put("svs.tbl", clew_file(lines))
    os.utime(path)
    [result] = ingest_source(settings, "svs")
    assert isinstance(result, ApplyResult)
    assert (result.entries, result.warnings, result.quarantined) == (3, 2, 0)
    con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        issues = con.execute(
            "SELECT line_no, rule, severity FROM file_issues ORDER BY line_no"
        ).fetchall()
    finally:
        con.close()
    assert issues == [(3, "line.too_long", "warning"), (4, "record_date.future", "warning")]


@pytest.mark.parametrize("mark", ["", "\ufeff"])
def test_two_extracts_run_together_are_refused_at_the_second_header(
    tmp_path: Path, mark: str
) -> None:
    """A header in mid-file is no record: not an N record, and not a record of this time."""
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text(ncic_file(GOOD) + mark + ncic_file(GOOD, stamp="202611220600"))
    refused = _refusal(path)
    assert refused.rule == "header-repeated"
    assert str(refused).startswith("VEHEXTRT.txt line 4: a second header line")
