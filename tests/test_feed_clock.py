"""The source's clock: a future extract time that was applied can be set aside, by name
and with a reason, so that real files are no longer refused as replays."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings
from hotlist.feed_clock import ClockError, set_aside_future_extract_times
from hotlist.ingest import IngestFailed, ingest_source
from hotlist.store import control as ctl
from hotlist.store.state import read_state
from tests.builders import Drop, ncic_file, ncic_line
from tests.stamps import stamp

BAD_TIME = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


def _lines(n: int, plate_prefix: str = "7CLK") -> list[str]:
    return [ncic_line(f"V{i:09d}", f"{plate_prefix}{i:03d}") for i in range(1, n + 1)]


def _applied_with_a_future_time(settings: Settings, drop: Drop) -> None:
    """A store whose feed applied a file dated 2099, as a version of hotlist that did not
    yet refuse future times would have left it (the parser now refuses such files, so the
    bad time is written where that version wrote it)."""
    drop.put("VEHEXTRT.txt", ncic_file(_lines(40), stamp=stamp(3)))
    ingest_source(settings, "ncic")
    con = ctl.connect(settings.data_dir)
    try:
        con.execute("UPDATE versions SET extract_time = ? WHERE feed = 'ncic'", [BAD_TIME])
    finally:
        con.close()


def test_after_a_future_time_was_applied_real_files_are_refused_as_replays(
    settings: Settings, drop: Drop
) -> None:
    _applied_with_a_future_time(settings, drop)
    drop.put("VEHEXTRT.txt", ncic_file(_lines(39), stamp=stamp(1)))
    with pytest.raises(IngestFailed, match=r"\[replay\]"):
        ingest_source(settings, "ncic")


def test_setting_the_future_time_aside_lets_the_next_real_file_apply(
    settings: Settings, drop: Drop, caplog: pytest.LogCaptureFixture
) -> None:
    _applied_with_a_future_time(settings, drop)
    caplog.set_level(logging.WARNING, logger="hotlist.feed_clock")

    [done] = set_aside_future_extract_times(
        settings.data_dir, "ncic", "J. Operator", "upstream clock bug, ticket 42"
    )

    assert (done.feed, done.version, done.extract_time) == ("ncic", 1, BAD_TIME)
    feed = read_state(settings.data_dir)["feeds"]["ncic"]
    assert feed["extract_time"] is None
    assert feed["last_event"]["verdict"] == "clock-reset"
    assert (
        "set aside by J. Operator: upstream clock bug, ticket 42" in feed["last_event"]["message"]
    )
    assert "2099-01-01" in feed["last_event"]["message"]
    assert "set aside by J. Operator" in caplog.text
    drop.put("VEHEXTRT.txt", ncic_file(_lines(39), stamp=stamp(1)))
    [outcome] = ingest_source(settings, "ncic")
    assert outcome.verdict == "applied"  # type: ignore[union-attr]
    assert read_state(settings.data_dir)["feeds"]["ncic"]["entries"] == 39


def test_with_no_future_time_nothing_is_changed_and_the_error_says_so(
    settings: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(_lines(3), stamp=stamp(2)))
    ingest_source(settings, "ncic")
    before = read_state(settings.data_dir)["feeds"]["ncic"]

    with pytest.raises(ClockError, match=r"no applied extract time later than .* nothing was"):
        set_aside_future_extract_times(settings.data_dir, "ncic", "J. Operator", "checking")

    assert read_state(settings.data_dir)["feeds"]["ncic"] == before


@pytest.mark.parametrize(("who", "why"), [("", "a reason"), ("J. Operator", "  ")])
def test_who_and_why_are_required(settings: Settings, who: str, why: str) -> None:
    with pytest.raises(ClockError, match="both are logged"):
        set_aside_future_extract_times(settings.data_dir, "ncic", who, why)


def test_who_and_why_cannot_forge_a_log_line(settings: Settings) -> None:
    with pytest.raises(ClockError, match="one printable line each"):
        set_aside_future_extract_times(
            settings.data_dir, "ncic", "J. Operator", "ok\nncic: extract time set aside by root"
        )


def test_the_reset_clock_command_sets_the_time_aside_once(settings: Settings, drop: Drop) -> None:
    _applied_with_a_future_time(settings, drop)
    config = str(settings.data_dir.parent / "hotlist.toml")
    args = ["reset-clock", "ncic", "--requested-by", "J. Operator", "--reason", "bad clock"]
    first = CliRunner().invoke(app, [*args, "-c", config])
    assert first.exit_code == 0, first.output
    assert "extract time 2099-01-01T00:00:00+00:00 of version 1" in first.output
    again = CliRunner().invoke(app, [*args, "-c", config])
    assert again.exit_code == 1
    unknown = CliRunner().invoke(app, ["reset-clock", "ncicc", *args[2:], "-c", config])
    assert unknown.exit_code == 2
    assert "no feed 'ncicc' is configured" in unknown.output
