"""Deletion reports for MOU compliance reviewers: what was removed, why, when it was
detected, when each copy was purged, what is outstanding, and each purge's verification.

One row per removed record: an NCIC record (one NIC) that stood on several lines, one per
plate, is one row with its plate count. A removed NCIC record is named by its NIC, a CLEW
entry (which has no record id) by a keyed hash of its plate and state; a report never
holds deleted content. Every timestamp is ISO 8601 UTC (``2026-12-02T05:27:47Z``) in
HTML, CSV and JSON alike; durations keep a tenth of a second.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

import duckdb
import polars as pl

from hotlist.config import Settings
from hotlist.serve.consumers import Consumer
from hotlist.serve.registry import registry_for
from hotlist.store.control import read_only
from hotlist.timefmt import iso

SOURCE_OF_FEED = {"svs": "CLEW SVS", "sfr": "CLEW SVS", "slr": "CLEW SVS", "ncic": "NCIC"}
COLUMNS = (
    "source", "feed", "list", "record", "plates", "reason", "detected_at", "purged_at",
    "latency_s", "status", "purge_run", "copies_purged", "outstanding_copies",
)  # fmt: skip

_ROWS_SQL = """
WITH picked AS (
    SELECT * FROM tombstones WHERE {where}
)
SELECT feed, list, record_id, min(keyed_hash) AS keyed_hash,
       string_agg(DISTINCT reason, '; ' ORDER BY reason) AS reason,
       min(detected_at) AS detected_at,
       CASE WHEN bool_and(purged_at IS NOT NULL) THEN max(purged_at) END AS purged_at,
       max(TRY_CAST(regexp_extract(verified, '^purge run (\\d+):', 1) AS BIGINT)) AS purge_run,
       detected_version, count(*) AS plates, min(entry_id) AS first_entry
FROM picked
GROUP BY feed, list, record_id, detected_version,
         CASE WHEN record_id IS NULL THEN keyed_hash END
ORDER BY detected_at, first_entry
"""


_ROW_TYPES = {
    "feed": pl.String, "list": pl.String, "record_id": pl.String, "keyed_hash": pl.String,
    "reason": pl.String, "purge_run": pl.Int64, "detected_version": pl.Int64,
    "plates": pl.Int64, "first_entry": pl.Int64,
}  # fmt: skip


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
    # Fetched as columns: rows as Python tuples (a time-zone object built per timestamp)
    # took most of a second per 16,000 removals.
    sql = _ROWS_SQL.format(where=" AND ".join(where))
    fetched: pl.DataFrame = con.sql(sql, params=params).pl()
    frame = fetched.cast(_ROW_TYPES).with_columns(  # type: ignore[arg-type]
        pl.col("detected_at", "purged_at").dt.convert_time_zone("UTC")
    )
    return frame.select(
        pl.col("feed").replace_strict(SOURCE_OF_FEED, default="other").alias("source"),
        "feed",
        "list",
        pl.coalesce(
            pl.concat_str(pl.lit("NIC "), pl.col("record_id")),
            pl.concat_str(pl.lit("keyed hash "), pl.col("keyed_hash").str.slice(0, 16)),
        ).alias("record"),
        "plates",
        "reason",
        "detected_at",
        "purged_at",
        (pl.col("purged_at") - pl.col("detected_at")).dt.total_microseconds().truediv(1e6)
        .alias("latency_s"),
        pl.when(pl.col("purged_at").is_null())
        .then(pl.lit("outstanding"))
        .otherwise(pl.lit("purged"))
        .alias("status"),
        "purge_run",
        _copies_purged(frame["detected_version"], consumers or [], acks or {}).alias(
            "copies_purged"
        ),
        _outstanding(consumers or []).alias("outstanding_copies"),
    )  # fmt: skip


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
        times = pl.Series([_iso_text(t) for _, t in history], dtype=pl.String)
        first = versions.search_sorted(detected.fill_null(0))
        at = times.gather(first.clip(upper_bound=len(times) - 1))
        parts.append(
            pl.select(
                pl.when(first < len(times)).then(pl.lit(f"{c.name} ") + at).alias(c.name)
            ).to_series()
        )
    if not parts:
        return pl.lit("")
    joined = pl.DataFrame(parts).select(pl.concat_str(pl.all(), separator="; ", ignore_nulls=True))
    return pl.lit(joined.to_series().fill_null(""))


def _iso_text(text: str) -> str:
    try:
        return iso(dt.datetime.fromisoformat(text))
    except ValueError:
        return text


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


def verifications(con: duckdb.DuckDBPyConnection, run_ids: list[int]) -> list[dict[str, Any]]:
    """Each purge run's verification, once: what was searched for, in how many places,
    and the result."""
    if not run_ids:
        return []
    found = con.execute(
        "SELECT run_id, finished_at, kind, ok, verification FROM purge_runs"
        " WHERE list_contains(?, run_id) ORDER BY run_id",
        [sorted(set(run_ids))],
    ).fetchall()
    out = []
    for run_id, finished, kind, ok, raw in found:
        checked = json.loads(raw)
        files, dbs = int(checked.get("files", 0)), int(checked.get("duckdb_files", 0))
        entry = {
            "purge_run": int(run_id), "finished_at": iso(finished), "kind": kind,
            "result": "PASS" if ok else "FAIL",
            "records_searched_for": int(checked.get("markers", 0)),
            "places_searched": files + dbs, "files": files, "duckdb_files": dbs,
            "bytes": int(checked.get("bytes", 0)), "findings": len(checked.get("findings", [])),
            "statement": "", "replicas": checked.get("replicas", []),
        }  # fmt: skip
        entry["statement"] = statement(entry)
        out.append(entry)
    return out


def statement(entry: dict[str, Any]) -> str:
    """A purge run's verification in a line, written from its figures alone (so the
    verification of a kept report can tell the line from content: :mod:`hotlist.verify_reports`)."""
    return (
        f"{entry['result']}: the content of {entry['records_searched_for']} removed records"
        f" searched for in {entry['places_searched']} places ({entry['files']} files,"
        f" {entry['duckdb_files']} DuckDB databases, {entry['bytes'] / 1e6:,.1f} MB);"
        f" {entry['findings']} findings"
    ) + _replicas_statement(entry["replicas"])


def _replicas_statement(replicas: list[dict[str, Any]]) -> str:
    """The serving replicas and what each confirmed (name, status, version), in a line."""
    if not replicas:
        return ""
    each = ", ".join(
        f"{r['name']} {r['status']}"
        + (f" (version {r['serving_version']})" if r.get("serving_version") else "")
        for r in replicas
    )
    return f"; serving replicas: {each}"


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
        "generated_at": iso(now),
        "removed_records": rows.height,
        "plates": int(rows["plates"].sum()),
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


def deletion_report(
    settings: Settings,
    con: duckdb.DuckDBPyConnection | None = None,
    since: dt.datetime | None = None,
    run_id: int | None = None,
    anchor_place: str = "deletion report",
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Rows and summary of the deletion report, with every patrol copy's state, each
    purge's verification, and the access log's head (anchored now).

    ``con`` is the writer's control connection when the caller holds one (the anchor is
    then written to the control database too); otherwise the control database is opened
    read-only."""
    from hotlist import audit

    own = con is None
    with contextlib.ExitStack() as stack:
        if con is None:  # a reader: waits, bounded and saying so, while a writer runs
            con = stack.enter_context(read_only(settings.data_dir))
        registry = stack.enter_context(registry_for(settings))
        rows = deletion_rows(
            con, since=since, run_id=run_id, consumers=registry.all_consumers(),
            acks=registry.ack_history(),
        )  # fmt: skip
        runs = [run_id] if run_id is not None else rows["purge_run"].drop_nulls().to_list()
        checked = verifications(con, runs)
    now = dt.datetime.now(dt.UTC)
    summary = summarize(rows, settings.purge.sla_hours, now, settings.purge.consumer_sla_hours)
    summary["verifications"] = checked
    summary["copies_behind"] = _copies_behind(settings, now)
    summary["verification"] = overall(checked)
    anchor = audit.anchor(settings, anchor_place, con=None if own else con)
    summary["access_log_anchor"] = anchor.as_dict()
    return rows, summary


def _copies_behind(settings: Settings, now: dt.datetime) -> str:
    """Copies that fell behind, told apart: pulls but does not apply, stopped polling."""
    from hotlist.serve.seen import copy_states, describe
    from hotlist.store.state import read_state

    current = int(read_state(settings.data_dir).get("hotlist_version", 0))
    with registry_for(settings) as registry:
        consumers, pulls = registry.all_consumers(), registry.last_pulls()
    return describe(copy_states(pulls, consumers, current, settings.purge.consumer_sla_hours, now))


def overall(checked: list[dict[str, Any]]) -> str:
    """The verifications of the purge runs a report covers, in a line."""
    if not checked:
        return "no purge run verified these removals yet"
    if len(checked) == 1:
        return str(checked[0]["statement"])
    failed = [c["purge_run"] for c in checked if c["result"] != "PASS"]
    if failed:
        return f"FAIL: purge runs {', '.join(map(str, failed))} of {len(checked)} did not verify"
    return f"PASS: all {len(checked)} purge runs verified (each below)"
