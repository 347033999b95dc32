"""A writer whose clock ran ahead leaves a segment named for a month still to come; later
records of today are chained into it. ``audit verify`` keeps the log intact (every
record is keyed) but says so, naming the segment, so the clock gets fixed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from typer.testing import CliRunner

from hotlist import audit
from hotlist.cli import app

runner = CliRunner()


def _record(user: str) -> audit.AccessRecord:
    return audit.AccessRecord(user, "CA0190000", "patrol", "plate 7ABC123", "granted", "cli")


def test_audit_verify_names_a_segment_from_the_future_and_still_says_intact(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "hotlist.toml"
    config.write_text(f'data_dir = "{data_dir}"\n', encoding="utf-8")
    now = dt.datetime.now(dt.UTC)
    ahead = now + dt.timedelta(days=62)
    audit.append(data_dir, _record("jdoe"), at=now)
    audit.append(data_dir, _record("jdoe"), at=ahead)  # the clock jumped forward
    audit.append(data_dir, _record("asmith"), at=now)  # and back

    result = runner.invoke(app, ["audit", "verify", "-c", str(config)])

    assert result.exit_code == 0, result.stderr
    assert "intact" in result.stdout
    assert f"access-{ahead:%Y-%m}.jsonl: segment dated in the future" in result.stderr
    assert f"access-{now:%Y-%m}.jsonl: segment dated" not in result.stderr
