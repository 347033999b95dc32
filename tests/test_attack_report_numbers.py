"""Attacks on the reading of a purge run's kept report as written (``hotlist/verify_reports.py``),
on the times taken out of texts (``hotlist/chance.py`` ``ISO_TIME``) and on the access
log's time field (``hotlist/verify_access.py``).

A report read as written is judged value by value, and what it passes over (a count, a
time, a line written from figures) is no copy of a removed plate only where the report
itself writes such a value. Anywhere else the same value is judged as its text, as the raw
bytes of any other file would be.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from hotlist.chance import grouped, stands
from hotlist.config import Settings
from hotlist.report_seals import clean_reports
from hotlist.reports.deletions import overall, statement
from hotlist.reports.render import render_json
from hotlist.scan import RAW_HIT
from hotlist.verify import verify
from hotlist.verify_access import AccessLogSearch
from hotlist.verify_reports import scan_report
from tests.builders import Drop, ncic_line
from tests.test_verify_reports import _day_two, _hits, _parsed, _rewrite

PLATE = "4417712"


def test_a_number_under_a_count_key_is_a_count_only_where_the_report_writes_that_count(
    relaxed: Settings, drop: Drop
) -> None:
    """``bytes``, ``seq``, ``files`` are counts where the report writes them (a
    verification's bytes, the anchor's record, a verification's files). The same key
    anywhere else (an added field, the summary's top, a list under it) holds no count the
    report computed: the number there is judged as its text, and a removed plate of those
    digits is found."""
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    entry = summary["verifications"][0]
    entry["bytes"], summary["access_log_anchor"]["seq"] = int(PLATE), int(PLATE)
    entry["statement"] = statement(entry)
    summary["verification"] = overall(summary["verifications"])
    _rewrite(report, summary, rows)
    assert _hits(report, PLATE) == {".json": [], ".html": []}, "counts where they are written"

    edits: list[tuple[str, list[Any], str, Any]] = [
        ("summary.notes.bytes", [], "notes", {"bytes": int(PLATE)}),
        ("summary.seq", [], "seq", int(PLATE)),
        ("summary.verifications[0].files[0]", ["verifications", 0], "files", [int(PLATE)]),
        ("summary.access_log_anchor.findings", ["access_log_anchor"], "findings", int(PLATE)),
    ]
    for place, at, key, value in edits:
        changed, _ = _parsed(report)
        target: Any = changed
        for step in at:
            target = target[step]
        target[key] = value
        first = changed["verifications"][0]
        first["statement"] = statement(first)
        changed["verification"] = overall(changed["verifications"])
        _rewrite(report, changed, rows)
        assert place in _hits(report, PLATE)[".json"], place


def test_the_anchors_place_is_passed_over_only_where_it_names_the_reports_own_run(
    relaxed: Settings, drop: Drop
) -> None:
    """The anchor's place is written from the run's number alone (``purge run 44,177``,
    as written before grouping ``purge run 44177``, or ``..., its report written late``).
    A place naming another number, a place that is no text at all, or a ``place``
    anywhere else, is judged as what it is: a removed plate of those digits in it is
    found."""
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    assert summary["access_log_anchor"]["place"] == f"purge run {summary['purge_run']:,}"
    summary["purge_run"] = int(PLATE)
    for written in (f"purge run {int(PLATE):,}", f"purge run {PLATE}, its report written late"):
        summary["access_log_anchor"]["place"] = written
        _rewrite(report, summary, rows)
        assert _hits(report, PLATE) == {".json": [], ".html": []}, written

    summary["purge_run"] = 2
    _rewrite(report, summary, rows)
    assert _hits(report, PLATE)[".json"] == ["summary.access_log_anchor.place"]
    summary["access_log_anchor"]["place"] = ["purge run 2", {"x": PLATE}]
    _rewrite(report, summary, rows)
    assert _hits(report, PLATE)[".json"] == ["summary.access_log_anchor.place[1].x"]
    summary["access_log_anchor"]["place"] = "purge run 2"
    summary["notes"] = {"place": f"purge run {PLATE}"}
    _rewrite(report, summary, rows)
    assert _hits(report, PLATE)[".json"] == ["summary.notes.place"]


def test_a_time_is_taken_out_of_a_text_only_where_it_stands_on_its_own(
    relaxed: Settings, drop: Drop
) -> None:
    """Times inside a text (the copies that purged a record, and when) are no plate:
    ``04T15`` in ``patrol 2026-12-04T15:14:18Z`` is a day and an hour. But a time touching
    a letter or digit is no time taken out whole: in ``ABC2026-12-04T15:14:18Z`` the
    ``2026`` ends the plate ``ABC2026``, and ``ZQX99`` after ``...:18`` starts with the
    ``Z``; both stand, as they do in the raw bytes."""
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    written = "patrol 2026-12-04T15:14:18Z; relay 2026-12-05T16:00:00Z"
    rows = rows.with_columns(pl.lit(written).alias("copies_purged"))
    _rewrite(report, summary, rows)
    assert _hits(report, "04T15") == {".json": [], ".html": []}

    rows = rows.with_columns(
        pl.lit("seen ABC2026-12-04T15:14:18Z").alias("reason"),
        pl.lit(f"{written}; patrol 2026-12-06T01:02:03ZQX99").alias("copies_purged"),
    )
    summary["copies_behind"] = "patrol: stopped polling (last pull 2026-12-04T15:14:18ZQX99)"
    _rewrite(report, summary, rows)
    assert _hits(report, "ABC2026")[".json"] == ["records.reason"]
    assert _hits(report, "ZQX99")[".json"] == ["summary.copies_behind", "records.copies_purged"]


def test_a_report_nested_deeper_than_any_report_is_searched_as_raw_bytes(
    relaxed: Settings, drop: Drop
) -> None:
    """A report whose summary nests values thousands deep (beyond what the JSON reader
    and writer follow) is no run report: the verification does not stop on it, it
    searches the file's bytes and finds the plate in them."""
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    deep = "[" * 50_000 + f'"{PLATE}"' + "]" * 50_000
    report.write_text(
        report.read_text().replace('{"summary": {', f'{{"summary": {{"x": {deep}, ', 1)
    )
    for path in (report, report.with_suffix(".html")):
        assert scan_report(path, [PLATE]) is None
    found = verify(relaxed.data_dir, None, [PLATE])
    assert [Path(f.place).name for f in found.findings] == [report.name]
    assert report not in clean_reports(report.parent, [PLATE])


def test_a_plate_behind_a_repeated_key_of_an_access_log_line_is_not_explained_by_its_time(
    tmp_path: Path,
) -> None:
    """The log writes each key once. A line whose ``user`` is repeated holds the first
    value in its bytes though JSON keeps the last: a removed ``04T14`` there is not the
    day and hour of the line's time (which holds ``04T14`` too), and such a line is
    named, as raw bytes that are no record of the log."""
    log = tmp_path / "access-2026-12.jsonl"
    log.write_text(
        '{"seq": 1, "time": "2026-12-04T14:47:02Z", "user": "bob"}\n'
        '{"seq": 2, "time": "2026-12-04T14:47:02Z", "user": "04T14", "user": "bob"}\n'
    )
    assert AccessLogSearch(["04T14"], []).scan(log) == [
        ("line 2", "raw bytes (not a JSON record) hold content of a removed record")
    ]


def test_grouped_writes_the_digits_as_they_were_of_any_number_of_any_length() -> None:
    """Grouping changes nothing but the commas it adds: a number written with leading
    zeros keeps them (``0012345`` is not ``12,345``), a number longer than Python reads
    as an ``int`` (4,300 digits) is grouped rather than failing the message it is in
    (an ingest's or purge's failure, a flow's log line), and digits of another script
    are left as they are."""
    assert grouped("entries 0012345 kept") == "entries 0,012,345 kept"
    long = "9" * 5000
    out = grouped(f"size {long} bytes")
    assert out.replace(",", "") == f"size {long} bytes"
    assert not stands(out, "99999")
    assert grouped("n \u0664\u0664\u0661\u0667\u0667\u0661\u0662 ok") == (
        "n \u0664\u0664\u0661\u0667\u0667\u0661\u0662 ok"
    )


def test_a_time_that_names_no_real_day_and_hour_is_judged_as_text(
    tmp_path: Path, relaxed: Settings, drop: Drop
) -> None:
    """``04T14`` in ``2026-12-04T14:47:02Z`` is the 4th day at 14 h. ``12T45`` in
    ``2026-12-12T45:00:00Z`` is no day and hour (there is no 45th hour): written in the
    access log's time field or under a report's time key, it is judged as text."""
    log = tmp_path / "access-2026-12.jsonl"
    log.write_text(
        '{"seq": 1, "time": "2026-12-04T14:47:02Z", "user": "bob"}\n'
        '{"seq": 2, "time": "2026-12-12T45:00:00Z", "user": "bob"}\n'
    )
    assert AccessLogSearch(["04T14"], []).scan(log) == []
    assert [where for where, _ in AccessLogSearch(["12T45"], []).scan(log)] == ["line 2:time"]

    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    summary["generated_at"] = "2026-12-12T45:00:00Z"
    summary["access_log_anchor"]["at"] = "2026-12-04T14:47:02Z"
    _rewrite(report, summary, rows)
    assert _hits(report, "04T14") == {".json": [], ".html": []}
    assert _hits(report, "12T45")[".json"] == ["summary.generated_at"]


def test_a_page_whose_json_is_no_regular_file_is_searched_as_raw_bytes(
    relaxed: Settings, drop: Drop
) -> None:
    """A page is read as written only beside its JSON. Where a directory or a FIFO
    stands in the JSON's place, the page is no run report: its bytes are searched (a
    plate in them is found), and the verification neither fails to read it nor waits on
    the FIFO for ever."""
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    _rewrite(report, summary, rows.with_columns(pl.lit(f"plate {PLATE} returned").alias("reason")))
    page = report.with_suffix(".html")
    report.unlink()
    report.mkdir()
    assert scan_report(page, [PLATE]) is None
    found = verify(relaxed.data_dir, None, [PLATE])
    assert [(Path(f.place).name, f.problem) for f in found.findings] == [(page.name, RAW_HIT)]
    report.rmdir()
    os.mkfifo(report)
    assert scan_report(page, [PLATE]) is None


def test_a_report_holding_a_text_no_utf8_can_hold_is_searched_as_raw_bytes(
    relaxed: Settings, drop: Drop
) -> None:
    """JSON can write a lone surrogate (``\\ud800``), which is no character UTF-8 can
    hold: a report holding one beside a plate is no run report as written, and the
    verification searches its bytes (finding the plate) rather than failing on it."""
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    summary["note"] = "\ud800" + PLATE
    report.write_text(render_json(rows, summary))
    assert "\\ud800" + PLATE in report.read_text()
    assert scan_report(report, [PLATE]) is None
    found = verify(relaxed.data_dir, None, [PLATE])
    assert [Path(f.place).name for f in found.findings] == [report.name]
