"""The report every purge run writes: what it purged and what is still outstanding, with
its verification and the access log's anchor (written to the control database too)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from hotlist import audit
from hotlist.config import Settings
from hotlist.report_seals import forget_removed, seal, seal_backlog, texts_of
from hotlist.reports.deletions import deletion_report
from hotlist.reports.render import render
from hotlist.store import private_dir


def write_run_report(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: int) -> Path:
    """The report of one purge run (what it purged, and what is still outstanding); also
    applies the access log's retention and anchors its head.

    An earlier run without a report (killed after it committed its marks, before its
    report) gets its report first: no purge run is left unreported."""
    audit.expire(settings, audit.retention_months(settings))
    unreported = con.execute(
        "SELECT run_id FROM purge_runs WHERE report IS NULL AND run_id < ? ORDER BY run_id",
        [run_id],
    ).fetchall()
    for (earlier,) in unreported:
        _write(con, settings, int(earlier), f"purge run {earlier:,}, its report written late")
    return _write(con, settings, run_id, f"purge run {run_id:,}")


def _write(
    con: duckdb.DuckDBPyConnection, settings: Settings, run_id: int, anchor_place: str
) -> Path:
    rows, summary = deletion_report(settings, con, run_id=run_id, anchor_place=anchor_place)
    summary["purge_run"] = run_id
    folder = private_dir(settings.data_dir / "reports")
    base = folder / f"deletions-run{run_id:06d}"
    files = [base.with_suffix(f".{fmt}") for fmt in ("html", "json")]
    for path in files:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render(rows, summary, path.suffix[1:], f"Deletion report, purge run {run_id}"))
    # Later verifications read the sealed texts, not every report's bytes again; reports
    # an older release wrote are sealed a few at a time.
    seal(con, files, texts_of(summary, rows))
    seal_backlog(con, folder)
    forget_removed(con, folder)
    con.execute(
        "UPDATE purge_runs SET report = ? WHERE run_id = ?",
        [str(base.with_suffix(".html")), run_id],
    )
    return base.with_suffix(".html")
