"""Deletion reports for MOU compliance reviewers: what was removed, why, when it was
detected, when each copy was purged, what is outstanding, and the verification proof.

A report names a removed NCIC record by its NIC and a removed CLEW entry (which has no
record id) by a keyed hash of its plate and state; it never holds the deleted content.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from hotlist.config import Settings
from hotlist.serve.consumers import Consumer, ack_history, all_consumers
from hotlist.store import control_path, private_dir

SOURCE_OF_FEED = {"svs": "CLEW SVS", "sfr": "CLEW SVS", "slr": "CLEW SVS", "ncic": "NCIC"}
COLUMNS = (
    "source", "feed", "list", "record", "reason", "detected_at", "purged_at",
    "latency_s", "status", "verification", "copies_purged", "outstanding_copies",
)  # fmt: skip


def deletion_rows(
    con: duckdb.DuckDBPyConnection,
    since: dt.datetime | None = None,
    run_id: int | None = None,
    consumers: list[Consumer] | None = None,
    acks: dict[str, list[tuple[int, str]]] | None = None,
) -> pl.DataFrame:
    """One row per removed record; ``run_id`` limits to a purge run plus what is pending.

    A removal is outstanding for a consumer until it acknowledges a published version at
    or after the one that removed the record (``outstanding_copies`` names them).
    """
    where: list[str] = ["TRUE"]
    params: list[object] = []
    if since is not None:
        where.append("detected_at >= ?")
        params.append(since)
    if run_id is not None:
        where.append("(purged_at IS NULL OR verified LIKE ?)")
        params.append(f"purge run {run_id}:%")
    sql = (
        "SELECT feed, list, record_id, keyed_hash, reason, detected_at, purged_at, verified,"
        " detected_version"
        f" FROM tombstones WHERE {' AND '.join(where)} ORDER BY detected_at, entry_id"
    )
    rows = con.execute(sql, params).fetchall()
    frame = pl.DataFrame(
        rows,
        schema={
            "feed": pl.String,
            "list": pl.String,
            "record_id": pl.String,
            "keyed_hash": pl.String,
            "reason": pl.String,
            "detected_at": pl.Datetime("us", "UTC"),
            "purged_at": pl.Datetime("us", "UTC"),
            "verified": pl.String,
            "detected_version": pl.Int64,
        },
        orient="row",
    )
    return frame.select(
        pl.col("feed").replace_strict(SOURCE_OF_FEED, default="other").alias("source"),
        "feed",
        "list",
        pl.coalesce(
            pl.concat_str(pl.lit("NIC "), pl.col("record_id")),
            pl.concat_str(pl.lit("keyed hash "), pl.col("keyed_hash").str.slice(0, 16)),
        ).alias("record"),
        "reason",
        "detected_at",
        "purged_at",
        (pl.col("purged_at") - pl.col("detected_at")).dt.total_seconds().alias("latency_s"),
        pl.when(pl.col("purged_at").is_null())
        .then(pl.lit("outstanding"))
        .otherwise(pl.lit("purged"))
        .alias("status"),
        pl.col("verified").fill_null("").alias("verification"),
        _copies_purged(frame["detected_version"], consumers or [], acks or {}).alias(
            "copies_purged"
        ),
        _outstanding(consumers or []).alias("outstanding_copies"),
    )


def _copies_purged(
    detected: pl.Series, consumers: list[Consumer], acks: dict[str, list[tuple[int, str]]]
) -> pl.Expr:
    """Per removal: each patrol copy that dropped it, and when (its first acknowledgement
    of a version at or after the removal)."""
    parts: list[pl.Series] = []
    for c in consumers:
        history = acks.get(c.name, [])
        if not history or not c.agency_kind.may_receive:
            continue
        versions = pl.Series([v for v, _ in history], dtype=pl.Int64)
        times = pl.Series([t[:19].replace("T", " ") for _, t in history], dtype=pl.String)
        first = versions.search_sorted(detected.fill_null(0))
        at = times.gather(first.clip(upper_bound=len(times) - 1))
        parts.append(
            pl.select(
                pl.when(first < len(times))
                .then(pl.lit(f"{c.name} ") + at + pl.lit(" UTC"))
                .alias(c.name)
            ).to_series()
        )
    if not parts:
        return pl.lit("")
    joined = pl.DataFrame(parts).select(pl.concat_str(pl.all(), separator="; ", ignore_nulls=True))
    return pl.lit(joined.to_series().fill_null(""))


def _outstanding(consumers: list[Consumer]) -> pl.Expr:
    """Names of active consumers whose acknowledged version predates the removal."""
    parts = [
        pl.when(pl.lit(c.acked_version or 0) < pl.col("detected_version")).then(pl.lit(c.name))
        for c in consumers
        if c.revoked_at is None and c.agency_kind.may_receive
    ]
    if not parts:
        return pl.lit("")
    return pl.concat_str(parts, separator=" ", ignore_nulls=True).str.strip_chars()


def summarize(
    rows: pl.DataFrame, sla_hours: float, now: dt.datetime, consumer_sla_hours: float = 12.0
) -> dict[str, Any]:
    sla_s = sla_hours * 3600
    purged = rows.filter(pl.col("status") == "purged")
    pending = rows.filter(pl.col("status") == "outstanding")
    age = (pl.lit(now) - pl.col("detected_at")).dt.total_seconds()
    late_pending = pending.filter(age > sla_s).height
    late_purged = purged.filter(pl.col("latency_s") > sla_s).height
    latency = purged["latency_s"]
    return {
        "generated_at": now.isoformat(),
        "removed_records": rows.height,
        "purged": purged.height,
        "outstanding": pending.height,
        "median_detection_to_purge_s": float(latency.median()) if latency.len() else None,  # type: ignore[arg-type]
        "max_detection_to_purge_s": float(latency.max()) if latency.len() else None,  # type: ignore[arg-type]
        "sla_hours": sla_hours,
        "past_sla": late_pending + late_purged,
        "consumer_sla_hours": consumer_sla_hours,
        "copies_outstanding": int((rows["outstanding_copies"] != "").sum()),
        "copies_overdue": rows.filter(
            (pl.col("outstanding_copies") != "") & (age > consumer_sla_hours * 3600)
        ).height,
        "by_source": dict(rows.group_by("source").len().iter_rows()),
    }


def _cell(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, float):
        return f"{value:,.1f}"
    return html.escape("" if value is None else str(value))


def _chart(rows: pl.DataFrame) -> str:
    """Removals per day (bars) and the slowest purge of the day (dots), inline SVG."""
    if rows.height == 0:
        return "<p>No removals in this period.</p>"
    days = (
        rows.group_by(pl.col("detected_at").dt.date().alias("day"))
        .agg(pl.len().alias("n"), pl.col("latency_s").max().alias("slowest"))
        .sort("day")
        .tail(60)
    )
    width, height, pad = 640, 180, 30
    step = (width - 2 * pad) / max(days.height, 1)
    top_n = max(int(days["n"].max() or 1), 1)  # type: ignore[arg-type]
    top_l = max(float(days["slowest"].fill_null(0).max() or 1.0), 1.0)  # type: ignore[arg-type]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}"'
        ' role="img" aria-label="Removals per day and slowest purge">'
    ]
    for i, (day, n, slowest) in enumerate(days.iter_rows()):
        x = pad + i * step
        h = (height - pad) * n / top_n
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{height - h:.1f}" width="{max(step - 4, 1):.1f}"'
            f' height="{h:.1f}" fill="#4a78b0"><title>{day}: {n} removed</title></rect>'
        )
        if slowest is not None:
            y = height - (height - pad) * slowest / top_l
            parts.append(
                f'<circle cx="{x + step / 2:.1f}" cy="{y:.1f}" r="3" fill="#c0392b">'
                f"<title>{day}: slowest purge {slowest:,.0f} s</title></circle>"
            )
        if days.height <= 14 or i % max(days.height // 10, 1) == 0:
            parts.append(f'<text x="{x:.1f}" y="{height + 15}" font-size="10">{day}</text>')
    parts.append(
        f'<text x="{pad}" y="{height + 32}" font-size="11">bars: removals per day (max {top_n});'
        f" dots: slowest detection-to-purge time (max {top_l:,.0f} s)</text></svg>"
    )
    return "".join(parts)


def render_html(rows: pl.DataFrame, summary: dict[str, Any], title: str) -> str:
    late = summary["past_sla"]
    lines = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}",
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #bbb;padding:3px 6px}",
        "th{background:#eee}.bad{color:#a00;font-weight:bold}.ok{color:#070}",
        "@media print{body{margin:0}}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Records removed from the hotlist, why, and when every local copy was purged. "
        "Removed NCIC records are named by NIC; CLEW entries, which have no record id, by a "
        "keyed hash of plate and state. No deleted content is shown.</p>",
        "<table>",
    ]
    facts = [
        ("Removed records", summary["removed_records"]),
        ("Purged and verified", summary["purged"]),
        ("Outstanding", summary["outstanding"]),
        ("Median detection to purge", _seconds(summary["median_detection_to_purge_s"])),
        ("Slowest detection to purge", _seconds(summary["max_detection_to_purge_s"])),
        (f"Past the {summary['sla_hours']:g} h SLA", late),
        ("Verification of this purge", summary.get("verification", "-")),
        ("Records still held by a patrol system", summary["copies_outstanding"]),
        (
            f"... of which past the {summary['consumer_sla_hours']:g} h consumer SLA",
            summary["copies_overdue"],
        ),
    ]
    for label, value in facts:
        cls = ' class="bad"' if ("SLA" in label) and value else ""
        lines.append(f"<tr><th>{label}</th><td{cls}>{_cell(value)}</td></tr>")
    lines.append("</table><h2>Removals and purge latency</h2>")
    lines.append(_chart(rows))
    lines.append("<h2>Records</h2><table><tr>")
    lines += [f"<th>{c.replace('_', ' ')}</th>" for c in COLUMNS]
    lines.append("</tr>")
    for row in rows.iter_rows(named=True):
        status = row["status"]
        lines.append("<tr>" + "".join(
            f'<td class="{"ok" if status == "purged" else "bad"}">{_cell(row[c])}</td>'
            if c == "status" else f"<td>{_cell(row[c])}</td>"
            for c in COLUMNS
        ) + "</tr>")  # fmt: skip
    lines.append(f"</table><p>Generated {summary['generated_at']}.</p></body></html>")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f} s" if value < 120 else f"{value / 60:,.1f} min"


def render(rows: pl.DataFrame, summary: dict[str, Any], fmt: str, title: str) -> str:
    if fmt == "json":
        return json.dumps(
            {"summary": summary, "records": rows.with_columns(
                pl.col("detected_at", "purged_at").dt.to_string("%Y-%m-%dT%H:%M:%SZ")
            ).to_dicts()},
            indent=2,
        )  # fmt: skip
    if fmt == "csv":
        return rows.write_csv()
    return render_html(rows, summary, title)


def deletion_report(
    settings: Settings,
    con: duckdb.DuckDBPyConnection | None = None,
    since: dt.datetime | None = None,
    run_id: int | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Rows and summary of the deletion report, with every patrol copy's state.

    ``con`` is the writer's control connection when the caller holds one; otherwise the
    control database is opened read-only."""
    own = con is None
    if con is None:
        con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        rows = deletion_rows(
            con, since=since, run_id=run_id, consumers=all_consumers(settings.data_dir),
            acks=ack_history(settings.data_dir),
        )  # fmt: skip
    finally:
        if own:
            con.close()
    now = dt.datetime.now(dt.UTC)
    summary = summarize(rows, settings.purge.sla_hours, now, settings.purge.consumer_sla_hours)
    return rows, summary


def write_run_report(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: int) -> Path:
    """The report of one purge run (what it purged, and what is still outstanding)."""
    rows, summary = deletion_report(settings, con, run_id=run_id)
    summary["purge_run"] = run_id
    [[verification]] = con.execute(
        "SELECT verification FROM purge_runs WHERE run_id = ?", [run_id]
    ).fetchall()
    checked = json.loads(verification)
    summary["verification"] = (
        f"{'PASS' if checked['ok'] else 'FAIL'}: {checked['files']} files"
        f" ({checked['bytes'] / 1e6:.1f} MB), {checked['duckdb_files']} DuckDB files,"
        f" {checked['markers']} removed plates searched for, {len(checked['findings'])} findings"
    )
    folder = private_dir(settings.data_dir / "reports")
    base = folder / f"deletions-run{run_id:06d}"
    for fmt in ("html", "json"):
        path = base.with_suffix(f".{fmt}")
        path.write_text(render(rows, summary, fmt, f"Deletion report, purge run {run_id}"))
        path.chmod(0o600)
    con.execute(
        "UPDATE purge_runs SET report = ? WHERE run_id = ?",
        [str(base.with_suffix(".html")), run_id],
    )
    return base.with_suffix(".html")


#: The columns of :func:`removals_of_plate`, in order.
REMOVAL_COLUMNS = ("feed", "list", "record_id", "reason", "detected_at", "purged_at")


def removals_of_plate(data_dir: Path, plate: str, state: str) -> list[dict[str, Any]]:
    """Was this plate removed? Every tombstone of it, oldest first, from keyed hashes.

    The plate itself is not kept anywhere: it is normalized as the lists are and hashed
    under the local key, and the tombstones are matched on that hash. The control
    database is opened read-only.
    """
    from hotlist import normalize
    from hotlist.keyed import PlateHasher
    from hotlist.store import control_path

    digest = PlateHasher(data_dir)(normalize.plate_value(plate), normalize.state_value(state))
    con = duckdb.connect(str(control_path(data_dir)), read_only=True)
    try:
        rows = con.execute(
            "SELECT feed, list, record_id, reason, detected_at, purged_at FROM tombstones"
            " WHERE keyed_hash = ? ORDER BY detected_at",
            [digest],
        ).fetchall()
    finally:
        con.close()
    return [dict(zip(REMOVAL_COLUMNS, row, strict=True)) for row in rows]
