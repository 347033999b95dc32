"""Every purge's run report anchors the access log's head in the report and in the control
database, and applies the access log's retention (real ingest, real purge)."""

from __future__ import annotations

import json

import duckdb

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.store import control_path
from tests.builders import Drop, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(40)]


def test_a_purge_run_report_carries_the_anchor_also_kept_in_the_control_database(
    relaxed: Settings, drop: Drop
) -> None:
    two_plates = [ncic_line("F000000001", "ZQXMRK01"), ncic_line("F000000001", "ZQXMRK02", "NV")]
    drop.put("VEHEXTRT.txt", ncic_file(KEEP + two_plates))
    ingest_source(relaxed, "ncic")
    for i in range(3):
        audit.append(
            relaxed.data_dir,
            audit.AccessRecord(
                "jdoe", "CA0190000", "patrol", f"plate 7KEEP00{i}", "granted", "api"
            ),
        )
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(relaxed, "ncic")
    result = purge(relaxed, None)
    assert result.report is not None
    report = json.loads(result.report.with_suffix(".json").read_text())
    anchor = report["summary"]["access_log_anchor"]
    assert (anchor["seq"], anchor["place"]) == (3, f"purge run {result.run_id}")
    [record] = report["records"]  # one NCIC record on two lines: one row
    assert (record["record"], record["plates"]) == ("NIC F000000001", 2)
    assert report["summary"]["verifications"][0]["result"] == "PASS"
    con = duckdb.connect(str(control_path(relaxed.data_dir)), read_only=True)
    try:
        rows = con.execute("SELECT seq, hmac, place FROM audit_anchors").fetchall()
    finally:
        con.close()
    assert (3, anchor["hmac"], anchor["place"]) in rows
    check = audit.verify_chain(relaxed.data_dir)
    assert check.ok, check.problems
    # cutting the last access off is now caught by the report's and the database's copies
    path = audit.log_path(relaxed.data_dir)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    assert "truncated" in str(audit.verify_chain(relaxed.data_dir).problem)
