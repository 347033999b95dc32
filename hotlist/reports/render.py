"""The deletion report as HTML (for people, screen and paper), CSV and JSON (for tools).

Every format is written from the rows' columns by polars, not by a template call per
cell: a day that removes 1 % of a 2M-line extract has 16,000 rows, a bulk cancellation
100,000 and more. The JSON is ``{"summary": {...}, "records": [...]}``, a record a line.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from hotlist import csvsafe
from hotlist.reports.chart import time_chart
from hotlist.reports.deletions import COLUMNS
from hotlist.reports.frame_html import frame_table
from hotlist.reports.page import esc, facts, page, table
from hotlist.timefmt import duration, iso_expr

FORMATS = ("html", "csv", "json")
#: The most records the HTML page lists (~7 MB; a browser still finds a NIC in it). Past
#: that the page lists those needing attention first, and says where every record is.
HTML_ROWS = 25_000


def _as_text(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows as tools receive them: ISO 8601 UTC times, seconds unrounded."""
    return rows.select(COLUMNS).with_columns(iso_expr("detected_at"), iso_expr("purged_at"))


def render(rows: pl.DataFrame, summary: dict[str, Any], fmt: str, title: str) -> str:
    if fmt == "json":
        return render_json(rows, summary)
    if fmt == "csv":
        return str(csvsafe.frame(_as_text(rows)).write_csv())
    if fmt == "html":
        return render_html(rows, summary, title)
    raise ValueError(f"report format {fmt!r}: use one of {', '.join(FORMATS)}")


def render_json(rows: pl.DataFrame, summary: dict[str, Any]) -> str:
    """The summary as indented JSON, then the records written by polars, one per line
    (JSON strings hold no raw newline, so the lines are the records)."""
    records = _as_text(rows).write_ndjson().rstrip("\n").replace("\n", ",\n")
    head = json.dumps(summary, indent=2)
    return f'{{"summary": {head},\n"records": [\n{records}\n]}}\n'


def _cells(rows: pl.DataFrame) -> pl.DataFrame:
    """The records table's cells as text: times ISO 8601 UTC, latencies in tenths of
    their unit (one call of :func:`hotlist.timefmt.duration` per row, the one way
    durations are written)."""
    latency = [None if s is None else duration(s) for s in rows["latency_s"].to_list()]
    return _as_text(rows).with_columns(pl.Series("latency_s", latency, dtype=pl.String))


def _listed(rows: pl.DataFrame, summary: dict[str, Any]) -> tuple[pl.DataFrame, str]:
    """The records the page lists, and a note when that is not all of them: past
    :data:`HTML_ROWS`, those outstanding, past the SLA or still held by a patrol copy come
    first (in report order), then the others; the JSON and CSV hold every record."""
    if rows.height <= HTML_ROWS:
        return rows, ""
    attention = (
        (pl.col("status") != "purged")
        | (pl.col("outstanding_copies") != "")
        | (pl.col("latency_s") > summary["sla_hours"] * 3600)
    ).fill_null(True)
    listed = rows.sort(attention, descending=True, maintain_order=True).head(HTML_ROWS)
    note = (
        f'<p class="bad">This page lists {HTML_ROWS:,} of the {rows.height:,} removed records:'
        " those outstanding, past the SLA or still held by a patrol copy first, then the"
        " others in order of detection. Every record is in the JSON and CSV forms of this"
        " report (<code>hotlist report deletions --format json</code> or <code>csv</code>);"
        " a purge run's JSON is written beside its page (<code>deletions-runNNNNNN.json</code>,"
        " same name as this page).</p>"
    )
    return listed, note


def render_html(rows: pl.DataFrame, summary: dict[str, Any], title: str) -> str:
    one_run = "purge_run" in summary
    anchor = summary.get("access_log_anchor")
    head = (
        f"record {anchor['seq']} of {esc(anchor['segment'] or '(empty log)')}, HMAC"
        f" <code>{esc(anchor['hmac'])}</code>, at {esc(anchor['at'])}"
        if anchor
        else "-"
    )
    verdict = str(summary.get("verification", "-"))
    overview = facts([
        ("Removed records", f"{summary['removed_records']} ({summary.get('plates', 0)} plates)", False),
        ("Purged and verified", esc(summary["purged"]), False),
        ("Outstanding", esc(summary["outstanding"]), bool(summary["outstanding"])),
        ("Median detection to purge", duration(summary["median_detection_to_purge_s"]), False),
        ("Slowest detection to purge", duration(summary["max_detection_to_purge_s"]), False),
        (f"Past the {summary['sla_hours']:g} h SLA", esc(summary["past_sla"]), bool(summary["past_sla"])),
        ("Verification of this purge" if one_run else "Verification", esc(verdict),
         not verdict.startswith("PASS")),
        ("Records still held by a patrol system", esc(summary["copies_outstanding"]), False),
        (f"... of which past the {summary['consumer_sla_hours']:g} h consumer SLA",
         esc(summary["copies_overdue"]), bool(summary["copies_overdue"])),
        ("Patrol copies fallen behind", esc(summary.get("copies_behind", "none")),
         summary.get("copies_behind", "none") != "none"),
        ("Access log head (anchored)", head, False),
    ])  # fmt: skip
    checks = table(
        ["purge run", "finished (UTC)", "result", "removed records searched for",
         "places searched", "files", "DuckDB databases", "MB", "findings"],
        [
            (c["purge_run"], c["finished_at"], c["result"], c["records_searched_for"],
             c["places_searched"], c["files"], c["duckdb_files"], f"{c['bytes'] / 1e6:,.1f}",
             c["findings"])
            for c in summary.get("verifications", [])
        ],
        numeric=frozenset({0, 3, 4, 5, 6, 7, 8}),
        times=frozenset({1}),
    )  # fmt: skip
    chart = time_chart(
        rows.select(pl.col("detected_at").alias("at"), pl.col("latency_s").alias("value")),
        "Removals detected, and the slowest detection-to-purge time",
        "removed records",
        dot_label="slowest detection to purge (s)",
    )
    listed, records_note = _listed(rows, summary)
    records = frame_table(
        _cells(listed),
        [c.replace("_", " ") for c in COLUMNS],
        numeric=frozenset({"plates", "latency_s"}),
        times=frozenset({"detected_at", "purged_at"}),
    )
    return page(
        title,
        [
            "<p>Records removed from the hotlist, why, and when every local copy was purged."
            " Removed NCIC records are named by NIC (one row per record, however many plates"
            " it carried); CLEW entries, which have no record id, by a keyed hash of plate"
            " and state. No deleted content is shown. Times are UTC (ISO 8601).</p>",
            overview,
            "<h2>Verification of each purge</h2>",
            checks if summary.get("verifications") else "<p>No purge run yet.</p>",
            "<h2>Removals and purge latency</h2>",
            chart,
            "<h2>Records</h2>",
            *([records_note] if records_note else []),
            records,
            f'<p class="note">Generated {esc(summary["generated_at"])}.</p>',
        ],
    )
