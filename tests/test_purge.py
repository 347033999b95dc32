"""Purge: removed records vanish from every local copy, provably, with deletion reports."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from hotlist import csvsafe
from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.lookup import find_hits
from hotlist.purge import PurgeIncomplete, lift_purge, manual_purge, purge
from hotlist.reports import deletion_rows, render, summarize
from hotlist.sql import identifier
from hotlist.store import control_path
from hotlist.store.state import read_state
from hotlist.verify import verify
from tests import crash
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line

MARKERS = ["ZQXMRK01", "ZQXMRK02", "ZQXMRK03"]
KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]
MARKED = [ncic_line(f"F{i:09d}", plate) for i, plate in enumerate(MARKERS)]
runner = CliRunner()


@pytest.fixture
def relaxed(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        "guards = {max_removal_share = 0.5}", svs="guards = {max_removal_share = 0.5}"
    )


def _every_file(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def _independent_scan(*roots: Path) -> list[str]:
    """Every file's bytes, and every string in every DuckDB file, searched for the markers."""
    found = []
    for path in _every_file(*roots):
        data = path.read_bytes()
        found += [f"{m} in {path}" for m in MARKERS if m.encode() in data]
        if path.suffix == ".duckdb" and path.name != "control.duckdb":
            con = duckdb.connect(str(path), read_only=True)
            try:
                for table, column in con.execute(
                    "SELECT table_name, column_name FROM duckdb_columns() WHERE data_type = 'VARCHAR' AND NOT internal"
                ).fetchall():
                    values = {
                        r[0]
                        for r in con.execute(
                            f"SELECT {identifier(column)} FROM {identifier(table)}"  # noqa: S608
                        ).fetchall()
                    }
                    found += [
                        f"{m} in {path}:{table}.{column}"
                        for m in MARKERS
                        if any(v and m in v for v in values)
                    ]
            finally:
                con.close()
    return found


def _day1_day2(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(KEEP + MARKED))
    drop.put("svs.tbl", clew_file([clew_line("ZQXMRK04"), clew_line("7SVS001")]))
    drop.put("sfr.tbl", clew_file([clew_line("5FEL555")]))
    drop.put("slr.tbl", clew_file([clew_line("4PLT444")]))
    ingest_source(settings, "ncic")
    ingest_source(settings, "svs")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    drop.put("svs.tbl", clew_file([clew_line("7SVS001")], header="DATE11/22/2026 18:00"))
    ingest_source(settings, "ncic")
    ingest_source(settings, "svs")


def test_removed_records_vanish_from_every_file_and_verify_passes(
    relaxed: Settings, drop: Drop, tmp_path: Path
) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "prefect.log").write_text("a log line with no record content\n")
    _day1_day2(relaxed, drop)
    # Before the purge the superseded versions still hold the removed records.
    assert not verify(relaxed.data_dir, home, []).ok
    result = purge(relaxed, home)
    assert result.purged == 4
    assert result.verification.ok, result.verification.findings
    assert result.verification.markers >= 4
    assert verify(relaxed.data_dir, home, []).ok
    assert _independent_scan(relaxed.data_dir, home) == []
    assert find_hits(relaxed.data_dir, "7KEEP001")  # what upstream kept is still a hit


def test_verify_finds_markers_in_prefect_home_and_the_purge_refuses_to_mark(
    relaxed: Settings, drop: Drop, tmp_path: Path
) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    _day1_day2(relaxed, drop)
    (home / "flow.log").write_text("someone logged plate ZQXMRK02 here\n")
    with pytest.raises(PurgeIncomplete) as failed:
        purge(relaxed, home)
    assert str(home / "flow.log") in str(failed.value)
    con = duckdb.connect(str(control_path(relaxed.data_dir)), read_only=True)
    try:
        [[pending]] = con.execute(
            "SELECT count(*) FROM tombstones WHERE purged_at IS NULL"
        ).fetchall()
    finally:
        con.close()
    assert pending == 4


def test_verify_fails_on_a_file_where_rows_were_only_deleted(
    relaxed: Settings, drop: Drop, tmp_path: Path
) -> None:
    _day1_day2(relaxed, drop)
    purge(relaxed, None)
    current = relaxed.data_dir / read_state(relaxed.data_dir)["feeds"]["ncic"]["content_file"]
    con = duckdb.connect(str(current))
    con.execute("DELETE FROM entries WHERE plate = '7KEEP001'")
    con.execute("CHECKPOINT")
    con.close()
    result = verify(relaxed.data_dir, None, [])
    assert not result.ok
    assert any("physical rows" in f.problem or "free blocks" in f.problem for f in result.findings)
    cli = runner.invoke(
        app,
        ["verify", "-c", str(relaxed.data_dir.parent / "hotlist.toml")],
        env={"PREFECT_HOME": str(tmp_path / "none")},
    )
    assert cli.exit_code == 1
    assert str(current) in cli.stderr


def test_a_purge_killed_midway_is_finished_by_the_next(relaxed: Settings, drop: Drop) -> None:
    _day1_day2(relaxed, drop)
    for point in ("after-markers", "after-erase", "before-swap"):
        if point == "before-swap":  # leave free blocks in the current file: it needs a rewrite
            current = (
                relaxed.data_dir / read_state(relaxed.data_dir)["feeds"]["ncic"]["content_file"]
            )
            con = duckdb.connect(str(current))
            con.execute("CREATE TABLE scratch AS SELECT range AS n FROM range(300000)")
            con.execute("DROP TABLE scratch")
            con.execute("CHECKPOINT")
            con.close()
        crash.killed_at(relaxed, point, "purge(s, None)")
    result = purge(relaxed, None)
    assert result.verification.ok, result.verification.findings
    assert result.verification.markers == 4  # the kills left what it searches for
    assert verify(relaxed.data_dir, None, []).ok
    assert _independent_scan(relaxed.data_dir) == []


def _pending(settings: Settings) -> int:
    con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        [[pending]] = con.execute(
            "SELECT count(*) FROM tombstones WHERE purged_at IS NULL"
        ).fetchall()
    finally:
        con.close()
    return int(pending)


@pytest.mark.parametrize("point", ["after-markers", "after-erase", "after-verify"])
def test_a_purge_killed_before_marking_leaves_the_next_one_searching_the_same_markers(
    relaxed: Settings, drop: Drop, point: str
) -> None:
    _day1_day2(relaxed, drop)
    crash.killed_at(relaxed, point, "purge(s, None)")
    assert _pending(relaxed) == 4
    result = purge(relaxed, None)
    assert result.verification.ok, result.verification.findings
    assert result.verification.markers == 4
    assert _independent_scan(relaxed.data_dir) == []


def test_a_purge_killed_after_marking_leaves_no_content_once_a_writer_runs_again(
    relaxed: Settings, drop: Drop
) -> None:
    _day1_day2(relaxed, drop)
    crash.killed_at(relaxed, "after-mark", "purge(s, None)")
    assert _pending(relaxed) == 0  # marked: the verification that searched them had passed
    assert _independent_scan(relaxed.data_dir) != []  # the superseded files, not yet scrubbed
    assert purge(relaxed, None).verification.ok
    assert _independent_scan(relaxed.data_dir) == []


def test_a_failed_purge_fails_again_until_the_content_is_gone_never_vacuously(
    relaxed: Settings, drop: Drop, tmp_path: Path
) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    planted = home / "flow.log"
    planted.write_text("someone logged plate ZQXMRK02 here\n")
    _day1_day2(relaxed, drop)
    for _ in range(2):
        with pytest.raises(PurgeIncomplete) as failed:
            purge(relaxed, home)
        assert [f.place for f in failed.value.verification.findings] == [str(planted)]
        assert failed.value.verification.markers == 4  # never 0 markers and a PASS
        assert _pending(relaxed) == 4
    config = str(relaxed.data_dir.parent / "hotlist.toml")
    again = runner.invoke(app, ["purge", "-c", config], env={"PREFECT_HOME": str(home)})
    assert again.exit_code == 1
    assert str(planted) in again.stderr
    planted.unlink()
    result = purge(relaxed, home)
    assert (result.purged, result.verification.ok, result.verification.markers) == (4, True, 4)
    assert _pending(relaxed) == 0
    assert _independent_scan(relaxed.data_dir, home) == []


def test_a_purge_that_cannot_search_for_a_pending_record_fails_and_says_why(
    relaxed: Settings, drop: Drop
) -> None:
    _day1_day2(relaxed, drop)
    # As an older release did: the superseded files erased before any verification passed.
    for path in (relaxed.data_dir / "store" / "feeds").rglob("v*.duckdb"):
        current = read_state(relaxed.data_dir)["feeds"][path.parent.name]["content_file"]
        if path != relaxed.data_dir / current:
            path.unlink()
    with pytest.raises(PurgeIncomplete) as failed:
        purge(relaxed, None)
    problems = {f.place: f.problem for f in failed.value.verification.findings}
    assert problems["feed ncic"].startswith("3 records awaiting purge cannot be searched for")
    assert problems["feed svs"].startswith("1 records awaiting purge cannot be searched for")
    assert _pending(relaxed) == 4


def test_a_manual_purge_is_sticky_until_lifted(relaxed: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(KEEP + MARKED))
    ingest_source(relaxed, "ncic")
    result = manual_purge(relaxed, ["F000000001"], "entered in error", "sgt.smith", None)
    assert result.purged == 1
    assert find_hits(relaxed.data_dir, "ZQXMRK02") == []
    assert verify(relaxed.data_dir, None, []).ok
    drop.put(
        "VEHEXTRT.txt", ncic_file(KEEP + MARKED, stamp="202611221800")
    )  # upstream still has it
    ingest_source(relaxed, "ncic")
    assert find_hits(relaxed.data_dir, "ZQXMRK02") == []
    assert lift_purge(relaxed, ["F000000001"], "lt.jones") == 1
    drop.put("VEHEXTRT.txt", ncic_file(KEEP + MARKED, stamp="202611230600"))
    ingest_source(relaxed, "ncic")
    assert [h.record_id for h in find_hits(relaxed.data_dir, "ZQXMRK02")] == ["F000000001"]


def test_manual_purge_on_the_command_line_needs_a_reason_and_a_requester(
    relaxed: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(KEEP + MARKED))
    ingest_source(relaxed, "ncic")
    config = str(relaxed.data_dir.parent / "hotlist.toml")
    assert runner.invoke(app, ["purge", "-c", config, "--nic", "F000000000"]).exit_code == 2
    assert runner.invoke(app, ["purge", "-c", config, "--nic", "F00000000"]).exit_code == 2
    done = runner.invoke(
        app,
        [
            "purge",
            "-c",
            config,
            "--nic",
            "F000000000",
            "--reason",
            "court order",
            "--requested-by",
            "clerk",
        ],
    )
    assert done.exit_code == 0, done.stderr
    assert find_hits(relaxed.data_dir, "ZQXMRK01") == []


def test_deletion_reports_hold_no_deleted_content_in_any_format(
    relaxed: Settings, drop: Drop
) -> None:
    _day1_day2(relaxed, drop)
    result = purge(relaxed, None)
    assert result.report is not None
    assert result.report.exists()
    assert result.report.with_suffix(".json").exists()
    config = str(relaxed.data_dir.parent / "hotlist.toml")
    outputs = [result.report.read_text(), result.report.with_suffix(".json").read_text()]
    for fmt in ("html", "csv", "json"):
        done = runner.invoke(app, ["report", "deletions", "-c", config, "--format", fmt])
        assert done.exit_code == 0
        outputs.append(done.stdout)
    for text in outputs:
        for marker in [*MARKERS, "ZQXMRK04"]:
            assert marker not in text
    report = json.loads(outputs[-1])
    assert report["summary"]["removed_records"] == 4
    assert report["summary"]["purged"] == 4
    assert report["summary"]["past_sla"] == 0
    records = {r["record"] for r in report["records"]}
    assert {"NIC F000000000", "NIC F000000001", "NIC F000000002"} <= records
    assert any(r.startswith("keyed hash ") for r in records)  # the CLEW entry has no record id
    assert "<svg" in outputs[0]


def test_report_lookup_answers_whether_a_plate_was_removed(relaxed: Settings, drop: Drop) -> None:
    _day1_day2(relaxed, drop)
    purge(relaxed, None)
    config = str(relaxed.data_dir.parent / "hotlist.toml")
    args = [
        "report",
        "lookup",
        "-c",
        config,
        "--state",
        "CA",
        "--user",
        "auditor",
        "--org",
        "CA0190000",
    ]
    removed = runner.invoke(app, [*args[:2], "ZQXMRK04", *args[2:], "--json"])
    [removal] = json.loads(removed.stdout)
    assert (removal["feed"], removal["list"]) == ("svs", "stolen_vehicle")
    assert removal["purged_at"] != "None"
    kept = runner.invoke(app, [*args[:2], "7SVS001", *args[2:]])
    assert "no removal" in kept.stdout


def test_the_report_flags_removals_past_the_sla(relaxed: Settings, drop: Drop) -> None:
    _day1_day2(relaxed, drop)
    con = duckdb.connect(str(control_path(relaxed.data_dir)), read_only=True)
    try:
        rows = deletion_rows(con)
    finally:
        con.close()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    summary = summarize(rows, 1.0, later)
    assert summary["outstanding"] == 4
    assert summary["past_sla"] == 4
    assert 'class="bad">4<' in render(rows, summary, "html", "t")


def test_a_kept_plate_that_contains_a_removed_one_is_no_trace_of_it(
    relaxed: Settings, drop: Drop
) -> None:
    drop.put(
        "VEHEXTRT.txt",
        ncic_file([*KEEP, ncic_line("V000000900", "ABC12"), ncic_line("V000000901", "7ABC123")]),
    )
    ingest_source(relaxed, "ncic")
    drop.put(
        "VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("V000000901", "7ABC123")], stamp="202611221800")
    )
    ingest_source(relaxed, "ncic")
    result = purge(relaxed, None)
    assert result.purged == 1
    assert result.verification.ok, result.verification.findings
    assert result.verification.markers == 1


def test_the_run_report_carries_the_verification_result(relaxed: Settings, drop: Drop) -> None:
    _day1_day2(relaxed, drop)
    result = purge(relaxed, None)
    assert result.report is not None
    summary = json.loads(result.report.with_suffix(".json").read_text())["summary"]
    assert summary["verification"].startswith("PASS: ")
    assert "Verification of this purge" in result.report.read_text()


def test_verify_finds_a_removed_plate_in_a_table_export_and_names_the_column(
    relaxed: Settings, drop: Drop
) -> None:
    import polars as pl

    _day1_day2(relaxed, drop)
    assert purge(relaxed, None).verification.ok
    copies = relaxed.data_dir / "published" / "copies"
    copies.mkdir()
    frame = pl.DataFrame(
        {
            "plate": ["7KEEP001", "ZQXMRK02", None],
            "raw_line": ["no content", None, "V1 ... ZQXMRK03 ... stolen"],
            "year": [2020, 2021, 2022],  # non-text columns are searched as text too
        }
    )
    frame.write_parquet(copies / "copy.parquet")
    frame.write_csv(copies / "copy.csv")
    result = verify(relaxed.data_dir, None, ["ZQXMRK02", "ZQXMRK03"])
    findings = {f.place: f.problem for f in result.findings}
    for name in ("copy.parquet", "copy.csv"):
        assert findings.pop(f"{copies / name}:plate").startswith("1 values")
        assert findings.pop(f"{copies / name}:raw_line").startswith("1 values")
    assert findings == {}


def test_the_published_csv_holds_the_parquets_rows_in_its_order(
    relaxed: Settings, drop: Drop
) -> None:
    import polars as pl

    _day1_day2(relaxed, drop)
    purge(relaxed, None)
    current = json.loads((relaxed.data_dir / "published" / "CURRENT.json").read_text())
    version = relaxed.data_dir / "published" / current["dir"]
    parquet = pl.read_parquet(version / "hotlist.parquet")
    csv = pl.read_csv(version / "hotlist.csv", schema=parquet.schema)
    assert parquet.height == current["entries"] > 0
    assert csv.equals(csvsafe.frame(parquet))
    assert csv.equals(parquet)  # validated codes, plates and dates: nothing to neutralize
    assert parquet.equals(parquet.sort("plate", "state", "entry_id"))  # ties: one order


def test_a_second_name_of_the_live_file_is_unlinked_not_scrubbed_and_loses_nothing(
    relaxed: Settings, drop: Drop
) -> None:
    """A stray second name of the live file in a feed directory (a hardlink) is only
    unlinked, never scrubbed: scrubbing it would zero the current version. Any other
    leftover there is scrubbed."""
    _day1_day2(relaxed, drop)
    current = relaxed.data_dir / read_state(relaxed.data_dir)["feeds"]["ncic"]["content_file"]
    second = current.with_name(current.name + ".old")
    os.link(current, second)
    stray = current.with_name("v000000099.duckdb.tmp")
    stray.write_bytes(b"ZQXMRK01 in a killed writer's leftover")
    result = purge(relaxed, None)
    assert result.verification.ok, result.verification.findings
    assert not second.exists()
    assert not stray.exists()
    assert find_hits(relaxed.data_dir, "7KEEP001")  # the current version is whole
    assert _independent_scan(relaxed.data_dir) == []
