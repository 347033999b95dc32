"""Freshness is judged by the extract's own time and by the last successful fetch, never
by when a file happened to be applied here."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.sources import FetchError
from hotlist.status import feed_statuses, staleness
from hotlist.store.state import read_state, state_path
from tests.builders import Drop, ncic_file, ncic_line
from tests.stamps import stamp

LINES = [ncic_line("V000000001", "7FRS001"), ncic_line("V000000002", "7FRS002")]


def _ncic_status(settings: Settings, now: dt.datetime | None = None) -> dict[str, object]:
    [status] = feed_statuses(settings, now=now, source_name="ncic")
    return status.__dict__


def test_an_old_extract_applied_just_now_is_stale(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(LINES, stamp=stamp(10 * 24)))
    ingest_source(settings, "ncic")

    status = _ncic_status(settings)

    assert status["stale"] is True
    assert status["age_hours"] is not None and 239 < status["age_hours"] < 241  # type: ignore[operator]
    assert status["fetch_age_hours"] is not None and status["fetch_age_hours"] < 1  # type: ignore[operator]
    assert status["stale_because"] == (f"extract {status['age_hours']:.1f} h old > 12 h",)


def test_a_recent_extract_just_fetched_is_fresh(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(LINES, stamp=stamp(1)))
    ingest_source(settings, "ncic")
    status = _ncic_status(settings)
    assert status["stale"] is False and status["stale_because"] == ()


def test_status_shows_both_clocks_and_exits_3_when_stale(settings: Settings, drop: Drop) -> None:
    config = str(settings.data_dir.parent / "hotlist.toml")
    drop.put("VEHEXTRT.txt", ncic_file(LINES, stamp=stamp(10 * 24)))
    ingest_source(settings, "ncic")

    table = CliRunner().invoke(app, ["status", "-c", config])
    as_json = CliRunner().invoke(app, ["status", "-c", config, "--json"])

    assert table.exit_code == 3 and "STALE" in table.stdout
    [ncic] = [r for r in json.loads(as_json.stdout) if r["feed"] == "ncic"]
    assert ncic["stale"] is True
    assert ncic["extract_time"] is not None and ncic["last_fetch_at"] is not None
    assert ncic["stale_because"][0].startswith("extract ")


def test_a_failed_fetch_leaves_the_last_successful_fetch_where_it_was(
    settings: Settings, drop: Drop
) -> None:
    path = drop.put("VEHEXTRT.txt", ncic_file(LINES, stamp=stamp(1)))
    ingest_source(settings, "ncic")
    taken = read_state(settings.data_dir)["feeds"]["ncic"]["last_good_file"]["at"]
    path.unlink()
    with pytest.raises(FetchError):
        ingest_source(settings, "ncic")

    status = _ncic_status(settings)

    assert status["last_event"] == "fetch-failed [not-found]"
    assert status["last_fetch_at"] == taken


def test_a_future_extract_time_cannot_keep_a_feed_fresh_when_fetches_stopped(
    settings: Settings, drop: Drop
) -> None:
    """An extract time ahead of this machine's clock gives a negative age: the fetch clock
    still says the feed has not been reached for 13 hours."""
    drop.put("VEHEXTRT.txt", ncic_file(LINES, stamp=stamp(1)))
    ingest_source(settings, "ncic")
    state = read_state(settings.data_dir)
    fetched = dt.datetime.fromisoformat(state["feeds"]["ncic"]["last_event"]["at"])
    later = fetched + dt.timedelta(hours=13)
    state["feeds"]["ncic"]["extract_time"] = (later + dt.timedelta(minutes=30)).isoformat()
    state_path(settings.data_dir).write_text(json.dumps(state))

    status = _ncic_status(settings, now=later)

    assert status["stale"] is True
    assert status["stale_because"] == ("last successful fetch 13.0 h ago > 12 h",)


def test_a_feed_never_fetched_is_stale_for_both_reasons() -> None:
    assert staleness(None, None, 12) == ("no extract time known", "never fetched")
    assert staleness(11.9, 0.1, 12) == ()
