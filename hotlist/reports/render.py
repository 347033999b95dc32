"""The deletion report as HTML (for people, screen and paper), CSV and JSON (for tools)."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from hotlist import csvsafe
from hotlist.reports.chart import time_chart
from hotlist.reports.deletions import COLUMNS
from hotlist.reports.page import esc, facts, page, table
from hotlist.timefmt import duration, iso, iso_expr

FORMATS = ("html", "csv", "json")


def _as_text(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows as tools receive them: ISO 8601 UTC times, seconds unrounded."""
    return rows.select(COLUMNS).with_columns(iso_expr("detected_at"), iso_expr("purged_at"))


def render(rows: pl.DataFrame, summary: dict[str, Any], fmt: str, title: str) -> str:
    if fmt == "json":
        return json.dumps({"summary": summary, "records": _as_text(rows).to_dicts()}, indent=2)
    if fmt == "csv":
        return str(csvsafe.frame(_as_text(rows)).write_csv())
    if fmt == "html":
        return render_html(rows, summary, title)
    raise ValueError(f"report format {fmt!r}: use one of {', '.join(FORMATS)}")


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
    records = table(
        [c.replace("_", " ") for c in COLUMNS],
        [
            tuple(
                iso(r[c]) if c in ("detected_at", "purged_at")
                else duration(r[c]) if c == "latency_s" and r[c] is not None
                else r[c]
                for c in COLUMNS
            )
            for r in rows.iter_rows(named=True)
        ],
        numeric=frozenset({COLUMNS.index("plates"), COLUMNS.index("latency_s")}),
        times=frozenset({COLUMNS.index("detected_at"), COLUMNS.index("purged_at")}),
    )  # fmt: skip
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
            records,
            f'<p class="note">Generated {esc(summary["generated_at"])}.</p>',
        ],
    )
