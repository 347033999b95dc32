"""The access log in PostgreSQL is searched by the purge as precisely as the file log: a
removed plate is lawful only as the data element a lookup recorded; anywhere else in a
record (here: an outcome that repeats a hit's content) it fails the purge, named."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from hotlist import audit
from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import PurgeIncomplete, purge
from tests.builders import Drop, ncic_file, ncic_line
from tests.test_pg_audit_readers import with_database

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]
REMOVED = ncic_line("F000000007", "ZQXLOOK7")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], pg_url: str) -> Settings:
    return with_database(make_settings("guards = {max_removal_share = 0.5}"), pg_url)


def _look_up(settings: Settings, plate: str) -> None:
    config = str(settings.data_dir.parent / "hotlist.toml")
    done = CliRunner().invoke(
        app,
        ["lookup", plate, "--user", "ofc.lee", "--org", "CA0190000", "--purpose", "patrol",
         "-c", config],
    )  # fmt: skip
    assert done.exit_code == 0, done.output


def _day_two(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")


def test_a_lawful_lookup_in_the_database_log_does_not_fail_the_purge(
    settings: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, REMOVED]))
    ingest_source(settings, "ncic")
    _look_up(settings, "ZQXLOOK7")
    assert any("ZQXLOOK7" in r["data_element"] for r in audit.records(settings))
    _day_two(settings, drop)
    result = purge(settings, None)
    assert result.purged == 1
    assert result.verification.ok, result.verification.findings


def test_a_removed_plate_elsewhere_in_a_database_record_fails_the_purge_naming_it(
    settings: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, REMOVED]))
    ingest_source(settings, "ncic")
    _look_up(settings, "ZQXLOOK7")
    [entry] = audit.append_many(
        settings,
        [audit.AccessRecord("ofc.lee", "CA0190000", "patrol", "plate 7KEEP001",
                            "granted: hit ZQXLOOK7 stolen", "api")],
    )  # fmt: skip
    _day_two(settings, drop)
    with pytest.raises(PurgeIncomplete) as failed:
        purge(settings, None)
    places = [str(f.place) for f in failed.value.verification.findings]
    assert len(places) == 1 and places[0].startswith("PostgreSQL access log at")
    assert places[0].endswith(f"record {entry['seq']}:outcome")
