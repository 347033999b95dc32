"""The usage audit as HTML (screen and paper), CSV (one tidy table) and JSON."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import polars as pl

from hotlist import csvsafe
from hotlist.audit import pg
from hotlist.audit.log import anchor
from hotlist.audit.segments import segment_paths
from hotlist.audit.usage import UsageReport, usage_report
from hotlist.audit.where import Where, database_url
from hotlist.audit.where import data_dir as data_dir_of
from hotlist.reports.chart import time_chart
from hotlist.reports.page import esc, facts, page, table

SECTIONS = (
    ("by_organization", "Accesses by organization"),
    ("by_user", "Accesses by user"),
    ("by_purpose", "Accesses by purpose"),
    ("by_outcome", "Accesses by outcome"),
    ("refusals", "Refusals by reason"),
    ("unusual", "Unusual volume for the user"),
    ("after_hours", "After-hours use"),
    ("per_day", "Accesses per day (UTC)"),
)


def _frame(report: UsageReport, name: str) -> pl.DataFrame:
    frame: pl.DataFrame = getattr(report, name)
    return frame.with_columns(pl.col(pl.Date).dt.to_string("%Y-%m-%d"))


def usage_audit(where: Where, since: dt.datetime | None = None, fmt: str = "html") -> str:
    """The usage audit since ``since``, rendered; the log's head is anchored with it (the
    file log of a ``data_dir``, or the log the settings name)."""
    report = usage_report(where, since)
    url = database_url(where)
    if pg.holds_records(url) if url is not None else segment_paths(data_dir_of(where)):
        report.summary["access_log_anchor"] = anchor(where, "usage report").as_dict()
    return render_usage(report, fmt)


def render_usage(report: UsageReport, fmt: str, title: str = "Access log usage audit") -> str:
    if fmt == "json":
        body: dict[str, Any] = {"summary": report.summary}
        body |= {name: _frame(report, name).to_dicts() for name, _ in SECTIONS}
        return json.dumps(body, indent=2)
    if fmt == "csv":
        return _csv(report)
    if fmt == "html":
        return _html(report, title)
    raise ValueError(f"report format {fmt!r}: use html, csv or json")


def _csv(report: UsageReport) -> str:
    """One table: a ``section`` column, then the union of every section's columns."""
    frames = [
        _frame(report, name).with_columns(pl.lit(name).alias("section")) for name, _ in SECTIONS
    ]
    columns = ["section", *sorted({c for f in frames for c in f.columns} - {"section"})]
    out = io.StringIO()
    csvsafe.write_rows(out, columns, (row for f in frames for row in f.iter_rows(named=True)))
    return out.getvalue()


def _html(report: UsageReport, title: str) -> str:
    s = report.summary
    overview = facts([
        ("Period", esc(f"{s['first_access'] or '-'} to {s['last_access'] or '-'}"
                       + (f" (since {s['since']})" if s["since"] else "")), False),
        ("Accesses", esc(s["accesses"]), False),
        ("Granted", esc(s["granted"]), False),
        ("Refused", esc(s["refused"]), bool(s["refused"])),
        ("Users (user, organization)", esc(s["users"]), False),
        ("Organizations", esc(s["organizations"]), False),
        (f"After hours ({s['time_zone']}, outside {s['work_hours']})",
         esc(s["after_hours_accesses"]), bool(s["after_hours_accesses"])),
        ("User-days of unusual volume", esc(s["unusual_user_days"]), bool(s["unusual_user_days"])),
    ])  # fmt: skip
    anchor = s.get("access_log_anchor")
    parts = [
        "<p>How hotlist data was searched: every access in the SB 34 access log, granted or"
        " refused. Queried plates are not shown. Times are UTC (ISO 8601) unless marked"
        " local.</p>",
        overview,
        "<h2>Accesses over time</h2>",
        time_chart(
            report.events.select("at", pl.col("result").alias("group")),
            "Accesses over time, granted and refused", "accesses",
            groups=("granted", "refused", "other"),
        ),
    ]  # fmt: skip
    for name, heading in SECTIONS[:-1]:
        frame = _frame(report, name)
        parts.append(f"<h2>{esc(heading)}</h2>")
        if name == "unusual":
            parts.append(f'<p class="note">Rule: {esc(s["unusual_rule"])}.</p>')
        if frame.height == 0:
            parts.append("<p>None.</p>")
            continue
        numeric = frozenset(i for i, dtype in enumerate(frame.dtypes) if dtype.is_numeric())
        parts.append(
            table([c.replace("_", " ") for c in frame.columns], frame.rows(), numeric=numeric)
        )
    if anchor:
        parts.append(
            f'<p class="note">Access log head when this report was made: record {anchor["seq"]}'
            f" of {esc(anchor['segment'] or '(empty log)')}, HMAC <code>{esc(anchor['hmac'])}"
            f"</code>, at {esc(anchor['at'])}.</p>"
        )
    parts.append(f'<p class="note">Generated {esc(s["generated_at"])}.</p>')
    return page(title, parts)


__all__ = ["render_usage", "usage_audit"]
