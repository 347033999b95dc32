"""The deletion report a reviewer signs off on: one row per removed record, one timestamp
format, unrounded latencies, each purge's verification once, a chart with axes for a day
or a year, and a page that prints legibly (looked at in headless Chromium)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest

from hotlist.config import Settings
from hotlist.reports import deletion_report, render
from hotlist.store import control as ctl
from tests.screenshots import print_to_pdf, screenshot

DAY = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
VERIFIED = {"ok": True, "findings": [], "files": 31, "bytes": 12_345_678, "duckdb_files": 6,
            "markers": 14}  # fmt: skip
BAR = (0x3B, 0x6E, 0xA8)
AXIS = (0x33, 0x33, 0x33)


def _control(
    settings: Settings, removals: list[tuple[str | None, str, dt.datetime, float]]
) -> None:
    """A control database holding these removals (NIC or None for a CLEW entry, keyed
    hash, detected at, seconds to purge), all purged by purge run 1."""
    con = ctl.connect(settings.data_dir)
    try:
        for i, (nic, keyed, detected, latency) in enumerate(removals):
            con.execute(
                "INSERT INTO tombstones VALUES (?, ?, ?, ?, ?, 'removed upstream', 2, ?, ?, ?)",
                [i + 1, "ncic" if nic else "svs", "stolen_vehicle", nic, keyed, detected,
                 detected + dt.timedelta(seconds=latency),
                 "purge run 1: PASS: 31 files (12.3 MB), 6 DuckDB files, 14 records"],
            )  # fmt: skip
        finished = max(r[2] for r in removals) + dt.timedelta(minutes=1)
        con.execute(
            "INSERT INTO purge_runs VALUES (1, ?, ?, 'sweep', ?, 3, TRUE, ?, NULL)",
            [finished, finished, len(removals), json.dumps(VERIFIED)],
        )
    finally:
        con.close()


def _one_day() -> list[tuple[str | None, str, dt.datetime, float]]:
    removals: list[tuple[str | None, str, dt.datetime, float]] = [
        (f"V{i:09d}", f"{i:064x}", DAY + dt.timedelta(minutes=37 * i), 3.8 + i) for i in range(13)
    ]
    removals.append(("V000000000", "f" * 64, DAY, 3.8))  # the first record's second plate
    removals.append((None, "c" * 64, DAY + dt.timedelta(hours=9), 42.25))
    return removals


def test_a_record_with_two_plates_is_one_row_and_latencies_keep_their_tenths(
    settings: Settings,
) -> None:
    _control(settings, _one_day())
    rows, summary = deletion_report(settings)
    assert rows.height == 14  # 15 plates, 14 records
    assert (summary["removed_records"], summary["plates"]) == (14, 15)
    first = rows.row(0, named=True)
    assert (first["record"], first["plates"], first["latency_s"]) == ("NIC V000000000", 2, 3.8)
    page = render(rows, summary, "html", "Deletion report")
    assert "3.8 s" in page
    assert json.loads(render(rows, summary, "json", "t"))["records"][0]["latency_s"] == 3.8
    [csv_first, *_] = csv.DictReader(io.StringIO(render(rows, summary, "csv", "t")))
    assert float(csv_first["latency_s"]) == 3.8


def test_every_format_writes_times_one_way_iso_8601_utc(settings: Settings) -> None:
    _control(settings, _one_day())
    rows, summary = deletion_report(settings)
    iso = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
    other = re.compile(
        r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?!:?\d*Z)(?:\.\d+)?(?:\+00:00| UTC)"
    )
    outputs = {fmt: render(rows, summary, fmt, "t") for fmt in ("html", "csv", "json")}
    for fmt, text in outputs.items():
        assert iso.search(text), fmt
        assert not other.search(text), fmt
    record = json.loads(outputs["json"])["records"][0]
    assert record["detected_at"] == "2026-11-22T08:00:00Z"
    assert record["purged_at"] == "2026-11-22T08:00:03Z"  # 3.8 s later, truncated to the second


def test_each_purge_verification_is_stated_once_with_what_where_and_result(
    settings: Settings,
) -> None:
    _control(settings, _one_day())
    rows, summary = deletion_report(settings)
    [check] = summary["verifications"]
    assert (check["purge_run"], check["result"], check["records_searched_for"]) == (1, "PASS", 14)
    assert (check["places_searched"], check["files"], check["duckdb_files"]) == (37, 31, 6)
    assert summary["verification"].startswith("PASS: the content of 14 removed records")
    page = render(rows, summary, "html", "t")
    assert page.count(summary["verification"]) == 1
    assert "verification" not in render(rows, summary, "csv", "t").splitlines()[0]
    assert "purge_run" in render(rows, summary, "csv", "t").splitlines()[0]


def test_the_report_anchors_the_access_log_head_and_shows_it(settings: Settings) -> None:
    from hotlist import audit

    _control(settings, _one_day())
    audit.append(
        settings.data_dir,
        audit.AccessRecord("jdoe", "CA0190000", "patrol", "plate 7ABC123", "granted", "cli"),
    )
    rows, summary = deletion_report(settings)
    anchor = summary["access_log_anchor"]
    assert anchor["seq"] == 1
    assert anchor["hmac"] in render(rows, summary, "html", "t")
    assert anchor in [a.as_dict() for a in audit.anchors.stored(settings.data_dir)]


def _bars(image_path: Path, page: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    image_path.write_text(page)
    shot = screenshot(image_path)
    assert shot.non_white_share() > 0.02, "the page rendered blank"
    return shot.matching(BAR, 10), shot.matching(AXIS, 8)


def _runs(xs: set[int]) -> int:
    return sum(1 for x in xs if x - 1 not in xs)


def test_the_chart_of_one_day_has_axes_and_separate_hourly_bars(
    settings: Settings, tmp_path: Path
) -> None:
    _control(settings, _one_day())
    rows, summary = deletion_report(settings)
    page = render(rows, summary, "html", "Deletion report")
    assert "hour (UTC), 2026-11-22" in page
    bars, axis = _bars(tmp_path / "day.html", page)
    assert bars, "no bars drawn"
    xs = {x for x, _ in bars}
    assert _runs(xs) >= 6  # separate bars, not one solid block
    assert (max(xs) - min(xs)) > 200  # 08:00 to 17:00 of the 24 hours drawn
    assert max(y for _, y in bars) - min(y for _, y in bars) >= 40  # bars of visible height
    rows_of_axis: dict[int, set[int]] = {}
    for x, y in axis:
        rows_of_axis.setdefault(y, set()).add(x)
    assert max(len(v) for v in rows_of_axis.values()) >= 600  # the x axis spans the chart


def test_the_chart_of_a_year_reads_by_week_with_axes(settings: Settings, tmp_path: Path) -> None:
    start = dt.datetime(2025, 12, 1, 10, tzinfo=dt.UTC)
    removals: list[tuple[str | None, str, dt.datetime, float]] = [
        (f"V{i:09d}", f"{i:064x}", start + dt.timedelta(days=i, hours=i % 7), 60.0 + i % 50)
        for i in range(0, 365, 2)
    ]
    _control(settings, removals)
    rows, summary = deletion_report(settings)
    page = render(rows, summary, "html", "Deletion report")
    assert "week (from Monday) (UTC), 2025-12-01 to 2026-11-" in page
    bars, _ = _bars(tmp_path / "year.html", page)
    assert _runs({x for x, _ in bars}) >= 40  # one bar per week, not 183 slivers


def test_the_page_prints_on_landscape_pages_with_the_header_repeated(
    settings: Settings, tmp_path: Path
) -> None:
    _control(settings, _one_day() * 3)
    rows, summary = deletion_report(settings)
    html_file = tmp_path / "print.html"
    html_file.write_text(render(rows, summary, "html", "Deletion report"))
    pdf = print_to_pdf(html_file)
    assert pdf.startswith(b"%PDF")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert boxes, "no page in the PDF"
    assert all(float(w) > float(h) for w, h in boxes)  # landscape
    assert "thead{display:table-header-group}" in html_file.read_text()


@pytest.mark.parametrize("fmt", ["html", "csv", "json"])
def test_a_report_without_removals_still_renders(settings: Settings, fmt: str) -> None:
    ctl.connect(settings.data_dir).close()
    rows, summary = deletion_report(settings)
    assert rows.height == 0
    assert render(rows, summary, fmt, "t")
