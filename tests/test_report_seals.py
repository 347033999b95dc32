"""A purge run's report is sealed when written: later verifications read its texts, not
its bytes, while its bytes are the sealed ones.

Reports are kept (about 11 MB a day of the 2M-line extract), and searching every one as
raw bytes made each purge's verification grow with the days the store had run. A sealed
report's texts (each once) are in the control database, judged there as free text; a
report whose bytes changed, or that was never sealed, is searched as raw bytes.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import manual_purge
from hotlist.report_seals import digest
from hotlist.store import control_path
from hotlist.verify import verify
from tests.builders import Drop, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]
REASON = "court order 2026-117; the owner's other car, ABC1234, stays listed"


def _purged_with_reason(settings: Settings, drop: Drop) -> list[Path]:
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("V000000901", "ZQX9001")]))
    ingest_source(settings, "ncic")
    result = manual_purge(settings, ["V000000901"], REASON, "ofc.lee")
    assert result.verification.ok, result.verification.findings
    return sorted((settings.data_dir / "reports").glob("deletions-run*"))


def _places(settings: Settings, marker: str) -> list[str]:
    found = verify(settings.data_dir, None, [marker])
    return [str(Path(f.place).relative_to(settings.data_dir)) for f in found.findings]


def test_a_purge_seals_its_report_with_its_texts(relaxed: Settings, drop: Drop) -> None:
    files = _purged_with_reason(relaxed, drop)
    assert [f.suffix for f in files] == [".html", ".json"]
    with duckdb.connect(str(control_path(relaxed.data_dir)), read_only=True) as con:
        sealed = dict(con.execute("SELECT report, sha256 FROM report_seals").fetchall())
        texts = {t for (t,) in con.execute("SELECT report_text FROM report_texts").fetchall()}
    assert sealed == {f.name: digest(f) for f in files}
    assert {"NIC V000000901", f"manual purge by ofc.lee: {REASON}"} <= texts
    assert not any("2026-12" in t for t in texts), "times are taken out of the texts"


def test_a_plate_in_a_sealed_reports_text_is_found_where_the_texts_are_judged(
    relaxed: Settings, drop: Drop
) -> None:
    """The operator's reason names a plate: it is found in the sealed texts (the report's
    bytes, unchanged since sealed, are not searched again)."""
    _purged_with_reason(relaxed, drop)
    assert _places(relaxed, "ABC1234") == ["store/control.duckdb:report_texts.report_text"]


def test_a_sealed_report_whose_bytes_changed_is_searched_as_raw_bytes(
    relaxed: Settings, drop: Drop
) -> None:
    files = _purged_with_reason(relaxed, drop)
    page = files[0]
    page.write_bytes(page.read_bytes().replace(b"</body>", b"<p>ZQX9001</p></body>"))
    assert _places(relaxed, "ZQX9001") == [str(page.relative_to(relaxed.data_dir))]


def test_reports_of_a_control_database_without_seals_are_searched_as_raw_bytes(
    relaxed: Settings, drop: Drop
) -> None:
    """A store written by a release before seals: its reports are searched as before."""
    files = _purged_with_reason(relaxed, drop)
    with duckdb.connect(str(control_path(relaxed.data_dir))) as con:
        con.execute("DROP TABLE report_seals")
        con.execute("DROP TABLE report_texts")
        con.execute("CHECKPOINT")
    assert _places(relaxed, "ABC1234") == [
        f"{f.relative_to(relaxed.data_dir)}:records.reason" for f in files
    ]


def test_a_report_written_again_is_sealed_again_and_leaves_no_deleted_rows(
    relaxed: Settings, drop: Drop
) -> None:
    """A purge killed after it sealed its report but before it recorded it writes the
    report again on the next run: the new files are sealed, and the control database
    still verifies clean (no deleted rows left in it)."""
    from hotlist.reports.run import write_run_report
    from hotlist.store import control as ctl

    files = _purged_with_reason(relaxed, drop)
    with ctl.connect(relaxed.data_dir) as con:
        [[run_id]] = con.execute("SELECT max(run_id) FROM purge_runs").fetchall()
        write_run_report(con, relaxed, int(run_id))
        sealed = dict(con.execute("SELECT report, sha256 FROM report_seals").fetchall())
    assert sealed == {f.name: digest(f) for f in files}
    result = verify(relaxed.data_dir, None, ["ZQX9001"])
    assert result.ok, result.findings


def test_reports_of_an_older_release_are_sealed_by_the_next_purge_if_they_read_as_written(
    relaxed: Settings, drop: Drop
) -> None:
    """A store upgraded from a release before seals: the next purge that writes a report
    seals the older ones that read as written (their texts are then what their structure
    holds), not one edited since."""
    files = _purged_with_reason(relaxed, drop)
    with duckdb.connect(str(control_path(relaxed.data_dir))) as con:
        con.execute("DROP TABLE report_seals")
        con.execute("DROP TABLE report_texts")
    edited = files[0].with_name("deletions-run000099.html")
    edited.write_bytes(files[0].read_bytes() + b"<!-- edited -->")
    files[1].with_name("deletions-run000099.json").write_bytes(files[1].read_bytes())

    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("V000000902", "ZQX9002")], stamp="202611230800"))  # fmt: skip
    ingest_source(relaxed, "ncic")
    manual_purge(relaxed, ["V000000902"], "entered in error", "ofc.lee")
    with duckdb.connect(str(control_path(relaxed.data_dir)), read_only=True) as con:
        sealed = dict(con.execute("SELECT report, sha256 FROM report_seals").fetchall())
        texts = {t for (t,) in con.execute("SELECT report_text FROM report_texts").fetchall()}
    assert {f.name for f in files} <= set(sealed)
    assert "deletions-run000099.json" not in sealed and edited.name not in sealed
    assert f"manual purge by ofc.lee: {REASON}" in texts
    assert _places(relaxed, "ABC1234") == [
        "reports/deletions-run000099.html",
        "reports/deletions-run000099.json:records.reason",
        "store/control.duckdb:report_texts.report_text",
    ]


def test_an_operator_who_removes_a_report_removes_its_texts_with_the_next_report(
    relaxed: Settings, drop: Drop
) -> None:
    """The reason of a drop named a plate: the texts kept for its report hold it. The
    operator removes that report (the reviewers keep their copy elsewhere); the next
    report written drops its seals and texts, and the control database verifies clean."""
    files = _purged_with_reason(relaxed, drop)
    assert _places(relaxed, "ABC1234") == ["store/control.duckdb:report_texts.report_text"]
    for path in files:
        path.unlink()
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("V000000902", "ZQX9002")], stamp="202611230800"))  # fmt: skip
    ingest_source(relaxed, "ncic")
    manual_purge(relaxed, ["V000000902"], "entered in error", "ofc.lee")
    assert _places(relaxed, "ABC1234") == []
    with duckdb.connect(str(control_path(relaxed.data_dir)), read_only=True) as con:
        reports = {r for (r,) in con.execute("SELECT DISTINCT report FROM report_texts").fetchall()}
    assert reports == {"deletions-run000002"}
    result = verify(relaxed.data_dir, None, ["ZQX9001", "ZQX9002"])
    assert result.ok, result.findings


def test_a_report_of_an_older_release_not_as_written_is_tried_once_not_at_every_purge(
    relaxed: Settings, drop: Drop
) -> None:
    """Reading a report value by value costs about 0.27 CPU-s a day's report: one that
    does not read as written is noted and left to the raw search, so later purges read
    the next ones instead of the same ones again."""
    from hotlist.report_seals import seal_backlog
    from hotlist.store import control as ctl

    files = _purged_with_reason(relaxed, drop)
    reports = relaxed.data_dir / "reports"
    for stem, page_tail in (
        ("deletions-run000098", b"<!-- edited -->"),
        ("deletions-run000099", b""),
    ):
        (reports / f"{stem}.html").write_bytes(files[0].read_bytes() + page_tail)
        (reports / f"{stem}.json").write_bytes(files[1].read_bytes())
    with ctl.connect(relaxed.data_dir) as con:
        assert seal_backlog(con, reports, limit=1) == 0  # 098 tried: not as written
        assert seal_backlog(con, reports, limit=1) == 1  # 099 sealed, 098 not tried again
        assert seal_backlog(con, reports, limit=1) == 0
        sealed = dict(con.execute("SELECT report, sha256 FROM report_seals").fetchall())
    assert "deletions-run000099.json" in sealed and "deletions-run000098.json" not in sealed
    assert _places(relaxed, "ABC1234") == [
        "reports/deletions-run000098.html",
        "reports/deletions-run000098.json:records.reason",
        "store/control.duckdb:report_texts.report_text",
    ]
