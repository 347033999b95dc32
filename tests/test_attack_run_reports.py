"""A purge killed after it marked its records (its verification had passed) but before
it wrote its report leaves no purge run without a report: the next purge writes the
missing one, listing what that run purged and how it was verified."""

from __future__ import annotations

import json

import duckdb

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.store import control_path
from tests import crash
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]
GONE = [ncic_line(f"F{i:09d}", f"ZQXMRK0{i}") for i in range(3)]


def _runs(settings: Settings) -> dict[int, str | None]:
    con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        rows = con.execute("SELECT run_id, report FROM purge_runs ORDER BY run_id").fetchall()
    finally:
        con.close()
    return {int(run_id): report for run_id, report in rows}


def test_the_report_of_a_purge_killed_after_marking_is_written_by_the_next_purge(
    relaxed: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(KEEP + GONE))
    drop.put("svs.tbl", clew_file([clew_line("7SVS001")]))
    drop.put("sfr.tbl", clew_file([clew_line("5FEL555")]))
    drop.put("slr.tbl", clew_file([clew_line("4PLT444")]))
    ingest_source(relaxed, "ncic")
    ingest_source(relaxed, "svs")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(relaxed, "ncic")
    crash.killed_at(relaxed, "after-mark", "purge(s, None)")
    killed = max(_runs(relaxed))
    assert _runs(relaxed)[killed] is None  # the kill came before the report

    purge(relaxed, None)

    runs = _runs(relaxed)
    assert all(report is not None for report in runs.values()), runs
    written = relaxed.data_dir / "reports" / f"deletions-run{killed:06d}.json"
    report = json.loads(written.read_text())
    assert report["summary"]["purge_run"] == killed
    assert report["summary"]["purged"] == 3
    [verification] = report["summary"]["verifications"]
    assert (verification["purge_run"], verification["result"]) == (killed, "PASS")
    assert verification["records_searched_for"] == 3
    assert written.stat().st_mode & 0o777 == 0o600
