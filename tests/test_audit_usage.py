"""Usage audits for reviewers (State Auditor 2019-118): accesses by organization, user,
purpose and outcome; refusals by reason; accesses per day as a chart; unusual volume and
after-hours use; looked at in headless Chromium."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotlist import audit, csvsafe
from hotlist.audit.usage import usage_report
from hotlist.audit.usage_render import render_usage
from hotlist.cli import app
from hotlist.config import Settings
from tests.screenshots import screenshot

# 2026-11-02 is a Monday; 18:00 UTC is 10:00 in California (PST, UTC-8).
MONDAY = dt.datetime(2026, 11, 2, 18, tzinfo=dt.UTC)
HOSTILE = "=cmd|' /C calc'!A0"
GRANTED = (0x3B, 0x6E, 0xA8)
REFUSED = (0xC0, 0x39, 0x2B)


def _log(data_dir: Path) -> None:
    def add(at: dt.datetime, user: str, org: str, purpose: str, outcome: str) -> None:
        record = audit.AccessRecord(user, org, purpose, "plate 7ABC123", outcome, "api")
        audit.append(data_dir, record, at=at, sync=False)

    for day in range(10):
        at = MONDAY + dt.timedelta(days=day)
        add(at, "jdoe", "CA0190000", "patrol", "granted: 1 hits")
        add(at + dt.timedelta(minutes=5), "jdoe", "CA0190000", "patrol", "granted: 0 hits")
        add(at, "asmith", "CA0380000", "investigation", "granted: 0 hits")
    for i in range(25):  # jdoe's spike on the eighth day
        add(
            MONDAY + dt.timedelta(days=7, minutes=10 + i),
            "jdoe",
            "CA0190000",
            "patrol",
            "granted: 0 hits",
        )
    night = dt.datetime(2026, 11, 4, 11, tzinfo=dt.UTC)  # 03:00 in California
    for i in range(3):
        add(night + dt.timedelta(minutes=i), "nightowl", "CA0190000", "patrol", "granted: 0 hits")
    for _ in range(2):
        add(
            MONDAY, "curious", "CA0190000", "curiosity", "refused: purpose not in the agency policy"
        )
    add(
        MONDAY,
        "ice",
        "CA0190000",
        "immigration",
        "refused: immigration enforcement is never a permitted purpose (SB 54)",
    )
    add(MONDAY, HOSTILE, "CA0190000", "patrol", "granted: 0 hits")


def test_the_report_counts_accesses_refusals_unusual_volume_and_after_hours(tmp_path: Path) -> None:
    _log(tmp_path)
    report = usage_report(tmp_path)
    s = report.summary
    assert (s["accesses"], s["refused"]) == (30 + 25 + 3 + 3 + 1, 3)
    orgs = {r["organization"]: r["accesses"] for r in report.by_organization.to_dicts()}
    assert orgs == {"CA0190000": 20 + 25 + 3 + 3 + 1, "CA0380000": 10}
    assert {r["purpose"]: r["refused"] for r in report.by_purpose.to_dicts()}["curiosity"] == 2
    reasons = {r["reason"]: r["refusals"] for r in report.refusals.to_dicts()}
    assert reasons["purpose not in the agency policy"] == 2
    assert any("SB 54" in reason for reason in reasons)
    [spike] = report.unusual.to_dicts()
    assert (spike["user"], spike["day"], spike["accesses"]) == ("jdoe", dt.date(2026, 11, 9), 27)
    after = {r["user"]: r["accesses"] for r in report.after_hours.to_dicts()}
    assert after["nightowl"] == 3
    # the weekend (Nov 7-8) is after hours too: jdoe and asmith worked it
    assert after["jdoe"] == 4 and after["asmith"] == 2
    assert report.per_day["accesses"].sum() == s["accesses"]


def test_csv_and_json_hold_every_section_and_no_live_formula(tmp_path: Path) -> None:
    _log(tmp_path)
    report = usage_report(tmp_path)
    rows = list(csv.DictReader(io.StringIO(render_usage(report, "csv"))))
    assert {r["section"] for r in rows} >= {"by_organization", "by_user", "refusals", "after_hours"}
    users = {r["user"] for r in rows if r["section"] == "by_user"}
    assert "'" + HOSTILE in users and HOSTILE not in users
    assert {csvsafe.restore(u) for u in users} >= {HOSTILE, "jdoe"}
    body = json.loads(render_usage(report, "json"))
    assert body["summary"]["accesses"] == report.summary["accesses"]
    assert "7ABC123" not in render_usage(report, "json") + render_usage(report, "csv")


def test_the_cli_report_filters_by_date_and_anchors_the_log(settings: Settings) -> None:
    _log(settings.data_dir)
    config = str(settings.data_dir.parent / "hotlist.toml")
    result = runner_invoke(
        ["audit", "report", "-c", config, "--format", "json", "--since", "2026-11-09"]
    )
    body = json.loads(result)
    assert body["summary"]["first_access"] >= "2026-11-09"
    assert body["summary"]["access_log_anchor"]["seq"] == 30 + 25 + 3 + 3 + 1
    assert audit.verify_chain(settings.data_dir).ok


def runner_invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("days", [1, 365])
def test_the_html_report_renders_with_a_chart_of_granted_and_refused(
    tmp_path: Path, days: int
) -> None:
    data_dir = tmp_path / "data"
    for day in range(days):
        at = MONDAY + dt.timedelta(days=day, hours=day % 5)
        audit.append_many(
            data_dir,
            [audit.AccessRecord("jdoe", "CA0190000", "patrol", "plate X", "granted: 0 hits", "api")]
            * (3 + day % 4)
            + [audit.AccessRecord("bob", "CA0190000", "nope", "plate X", "refused: purpose", "api")],
            at=at, sync=False,
        )  # fmt: skip
    page = tmp_path / "usage.html"
    page.write_text(audit.usage_audit(data_dir, None, "html"))
    shot = screenshot(page)
    assert shot.non_white_share() > 0.02
    blue, red = shot.matching(GRANTED, 10), shot.matching(REFUSED, 10)
    assert len(blue) > 200, "granted bars not drawn"
    assert len(red) > 20, "refused bars not drawn"
    top_of_chart = min(y for _, y in blue)
    assert all(y > 150 for _, y in blue)  # below the headline facts, not a blank page
    assert max(y for _, y in blue) - top_of_chart >= 60  # bars of a readable height
