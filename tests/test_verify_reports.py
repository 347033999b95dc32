"""A purge run's kept deletion report is verified as what it is, value by value.

Reports are kept, and they are full of numbers the system computed: a removed plate
equal to one of them (a report's byte count, a record count, a time's ``22T14``) was a
finding in every later purge, for good. A number where the report writes a count is that
count; every text is still judged, and a report that is not exactly as the purge wrote it
is searched as raw bytes, as before.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.raw_device import excluded_ranges, scan_device
from hotlist.report_seals import clean_reports, seals
from hotlist.reports.deletions import overall, statement
from hotlist.reports.render import render_html, render_json
from hotlist.scan import holding
from hotlist.store import control_path
from hotlist.verify import verify
from hotlist.verify_reports import read_report, scan_report
from tests.builders import Drop, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]


def _day_two(settings: Settings, drop: Drop, extra: list[str]) -> Path:
    """Day 1 holds KEEP and ``extra``, day 2 only KEEP: the purge's report (JSON)."""
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, *extra]))
    ingest_source(settings, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")
    result = purge(settings, None)
    assert result.verification.ok, result.verification.findings
    [report] = sorted((settings.data_dir / "reports").glob("deletions-run*.json"))[-1:]
    return report


def test_a_digit_plate_equal_to_a_count_of_a_kept_report_does_not_fail_the_purge(
    relaxed: Settings, drop: Drop
) -> None:
    """Day 2's report counts the bytes its verification searched; a later day removes a
    plate of exactly those digits. It stood in that report, as a count, and failed every
    purge after."""
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    count = str(json.loads(report.read_bytes().partition(b',\n"records"')[0][11:])["verifications"][0]["bytes"])  # fmt: skip
    assert len(count) >= 5
    assert f'"bytes": {count}'.encode() in report.read_bytes()

    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("V000000902", count)], stamp="202611230800"))  # fmt: skip
    ingest_source(relaxed, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611231800"))
    ingest_source(relaxed, "ncic")
    result = purge(relaxed, None)
    assert result.verification.ok, result.verification.findings
    assert result.purged == 1
    # The same digits written where a plate can stand, beside the report, are found.
    (relaxed.data_dir / "reports" / "note.txt").write_text(f"removed: {count}\n")
    found = verify(relaxed.data_dir, None, [count])
    assert [Path(f.place).name for f in found.findings] == ["note.txt"]


def test_a_kept_reports_blocks_are_left_out_of_the_raw_device_search(
    on_device: tuple[Settings, Path], drop: Drop
) -> None:
    """``[purge] raw_device`` reads the device under data_dir whole, the reports' blocks
    included: a report read as written and clean leaves its blocks out of that search, as
    the access log does; one edited by hand does not."""
    settings, image = on_device
    report = _day_two(settings, drop, [ncic_line("V000000901", "ZQX9001")])
    count = str(json.loads(report.read_bytes().partition(b',\n"records"')[0][11:])["verifications"][0]["bytes"])  # fmt: skip
    subprocess.run(["sync"], check=True)
    extents = excluded_ranges([report])
    in_report = [
        h for h in scan_device(image, [count], []) if any(a <= h.offset < b for a, b in extents)
    ]
    assert in_report, "the count is on the device, in the report's blocks"
    kept = clean_reports(settings.data_dir / "reports", [count])
    assert report in kept
    assert not set(scan_device(image, [count], excluded_ranges(kept))) & set(in_report)
    with duckdb.connect(str(control_path(settings.data_dir)), read_only=True) as con:
        sealed = seals(con)
    assert report in clean_reports(settings.data_dir / "reports", [count], sealed)
    report.write_text(report.read_text() + f"{count}\n")
    assert report not in clean_reports(settings.data_dir / "reports", [count])
    assert report not in clean_reports(settings.data_dir / "reports", [count], sealed)


def _rewrite(report: Path, summary: dict[str, Any], rows: pl.DataFrame) -> None:
    """The report's JSON and page written again, as the purge writes them."""
    report.write_text(render_json(rows, summary))
    title = f"Deletion report, purge run {summary['purge_run']}"
    report.with_suffix(".html").write_text(render_html(rows, summary, title))


def _parsed(report: Path) -> tuple[dict[str, Any], pl.DataFrame]:
    parsed = read_report(report.read_bytes())
    assert parsed is not None, "a report as the purge wrote it is read as one"
    summary, records = parsed
    rows = records.with_columns(
        pl.col("detected_at", "purged_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
    )
    return summary, rows


def _hits(report: Path, marker: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in (report, report.with_suffix(".html")):
        hits = scan_report(path, [marker])
        assert hits is not None, f"{path.name} is read as a run report"
        found[path.suffix] = [where for where, _ in hits]
    return found


def test_counts_and_times_of_a_report_are_no_plate_but_every_text_is_judged(
    relaxed: Settings, drop: Drop
) -> None:
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    summary["removed_records"], summary["verifications"][0]["bytes"] = 16817, 4417712
    summary["generated_at"] = "2026-12-22T14:05:09Z"
    summary["verifications"][0]["statement"] = statement(summary["verifications"][0])
    _rewrite(report, summary, rows)
    for chance in ("16817", "4417712", "22T14"):
        assert _hits(report, chance) == {".json": [], ".html": []}, chance
        assert chance in report.read_text()

    # A removal whose reason names the plate (an operator's words) holds it: found in both.
    rows = rows.with_columns(pl.lit("recovered, plate 16817 returned to owner").alias("reason"))
    _rewrite(report, summary, rows)
    assert _hits(report, "16817") == {".json": ["records.reason"], ".html": ["records.reason"]}


def test_a_number_where_the_report_writes_no_count_is_judged_as_its_text(
    relaxed: Settings, drop: Drop
) -> None:
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    summary["plate_of_interest"] = 4417712
    summary["by_source"]["4417712"] = 1
    _rewrite(report, summary, rows)
    assert _hits(report, "4417712") == {
        ".json": ["summary.by_source.4417712", "summary.plate_of_interest"],
        ".html": ["summary.by_source.4417712", "summary.plate_of_interest"],
    }


def test_a_statement_that_is_not_what_its_figures_write_is_judged_as_text(
    relaxed: Settings, drop: Drop
) -> None:
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    summary, rows = _parsed(report)
    summary["verifications"][0]["statement"] += "; 4417712"
    summary["verification"] = "PASS: 4417712"
    _rewrite(report, summary, rows)
    assert _hits(report, "4417712")[".json"] == [
        "summary.verifications[0].statement",
        "summary.verification",
    ]


def test_a_report_not_exactly_as_written_is_searched_as_raw_bytes(
    relaxed: Settings, drop: Drop
) -> None:
    """A repeated key, an edited page, another encoding: the file is searched as any
    other, and the count in it is a finding again, as it is in any unknown file."""
    report = _day_two(relaxed, drop, [ncic_line("V000000901", "ZQX9001")])
    text = report.read_text()
    page = report.with_suffix(".html")
    originals = {report: text, page: page.read_text()}
    edits = {
        report: [
            text.replace('"plates": ', '"plates": 4417712, "plates": ', 1),
            text.replace("\n]}", "\n]}\n", 1),
            text.replace('{"summary": {', '{"summary": {"x": "4417712", ', 1),
        ],
        page: [originals[page].replace("</body>", "<!-- 4417712 --></body>")],
    }
    for path, versions in edits.items():
        for version in versions:
            path.write_text(version if "4417712" in version else version + " 4417712")
            assert scan_report(path, ["4417712"]) is None
            found = verify(relaxed.data_dir, None, ["4417712"])
            assert [Path(f.place).name for f in found.findings] == [path.name]
            path.write_text(originals[path])
        path.write_bytes(originals[path].encode("utf-16"))
        assert scan_report(path, ["4417712"]) is None
        path.write_text(originals[path])
    # Without its JSON, a page is searched as raw bytes.
    report.unlink()
    assert scan_report(page, ["4417712"]) is None


_NOW = dt.datetime(2026, 12, 22, 14, 5, 9, tzinfo=dt.UTC)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 10**9), min_size=6, max_size=6),
    plate=st.text("0123456789", min_size=5, max_size=8),
    reason=st.text("ABCXYZ0123456789 -", max_size=20),
)
def test_a_reports_counts_never_hit_and_its_texts_hit_as_free_text_does(
    tmp_path_factory: Any, counts: list[int], plate: str, reason: str
) -> None:
    """Any counts, any digit plate: no hit from a count; a reason is judged as free text."""
    entry: dict[str, Any] = {
        "purge_run": counts[0], "finished_at": "2026-12-22T14:05:09Z", "kind": "purge",
        "result": "PASS", "records_searched_for": counts[1], "places_searched": counts[2],
        "files": counts[3], "duckdb_files": counts[4], "bytes": counts[5], "findings": 0,
        "statement": "", "replicas": [],
    }  # fmt: skip
    entry["statement"] = statement(entry)
    summary = {
        "generated_at": "2026-12-22T14:05:09Z", "removed_records": counts[1],
        "plates": counts[2], "by_source": {"NCIC": counts[3]}, "verifications": [entry],
        "verification": overall([entry]), "purge_run": counts[0], "purged": 1,
        "outstanding": 0, "median_detection_to_purge_s": counts[4] / 7,
        "max_detection_to_purge_s": counts[5] / 3, "sla_hours": 1.0, "past_sla": 0,
        "consumer_sla_hours": 12.0, "copies_outstanding": 0, "copies_overdue": 0,
        "copies_behind": "none",
    }  # fmt: skip
    rows = pl.DataFrame({
        "source": ["NCIC"], "feed": ["ncic"], "list": ["stolen_vehicle"],
        "record": [f"NIC V{counts[1] % 10**9:09d}"], "plates": [counts[2]],
        "reason": [reason], "detected_at": [_NOW], "purged_at": [_NOW],
        "latency_s": [counts[3] / 11], "status": ["purged"], "purge_run": [counts[0]],
        "copies_purged": [f"patrol {_NOW:%Y-%m-%dT%H:%M:%SZ}"], "outstanding_copies": [""],
    })  # fmt: skip
    report = tmp_path_factory.mktemp("reports") / "deletions-run000001.json"
    _rewrite(report, summary, rows)
    expected = (
        holding([plate], pl.Series([reason])).item()
        or holding([plate], pl.Series([f"NIC V{counts[1] % 10**9:09d}"])).item()
    )
    hits = _hits(report, plate)
    assert bool(hits[".json"]) == bool(expected) == bool(hits[".html"])
