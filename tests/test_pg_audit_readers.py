"""Reading the access log kept in PostgreSQL, through the settings: export, the usage
audit, retention, ``hotlist audit verify`` and the command line's own records (real
PostgreSQL)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from hotlist import audit
from hotlist.cli import app
from hotlist.config import Settings, load_settings
from hotlist.ingest import ingest_source
from hotlist.pg.migrate import upgrade
from tests.builders import Drop, ncic_file, ncic_line

runner = CliRunner()
NOW = dt.datetime(2026, 11, 30, 18, tzinfo=dt.UTC)


def with_database(settings: Settings, url: str) -> Settings:
    """The same configuration, its serving state (and access log) in PostgreSQL."""
    config = settings.data_dir.parent / "hotlist.toml"
    config.write_text(config.read_text() + f'\n[serve]\ndatabase_url = "{url}"\n')
    upgrade(url)
    return load_settings(config, environ={})


@pytest.fixture
def pg_settings(make_settings: Callable[..., Settings], pg_url: str) -> Settings:
    settings = with_database(make_settings(), pg_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _config(settings: Settings) -> str:
    return str(settings.data_dir.parent / "hotlist.toml")


def _add(settings: Settings, at: dt.datetime, user: str = "jdoe", outcome: str = "granted") -> None:
    record = audit.AccessRecord(user, "CA0190000", "patrol", "plate 7ABC123", outcome, "api")
    audit.append(settings, record, at=at)


def test_export_reads_the_database_not_the_files(pg_settings: Settings) -> None:
    _add(pg_settings, NOW - dt.timedelta(days=3), user="=cmd|' /C calc'!A0")
    _add(pg_settings, NOW)
    out = io.StringIO()
    assert audit.export_csv(pg_settings, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["seq"] for r in rows] == ["1", "2"]
    assert rows[0]["user"].startswith("'=")  # neutralized
    since = io.StringIO()
    assert audit.export_csv(pg_settings, since, NOW - dt.timedelta(days=1)) == 1
    assert not audit.segment_paths(pg_settings.data_dir)  # nothing went to files


def test_the_usage_audit_counts_the_database_log_and_anchors_its_head(
    pg_settings: Settings,
) -> None:
    for i in range(4):
        _add(pg_settings, NOW + dt.timedelta(minutes=i))
    _add(pg_settings, NOW, user="curious", outcome="refused: purpose not in the agency policy")
    body = json.loads(audit.usage_audit(pg_settings, None, "json"))
    assert body["summary"]["accesses"] == 5
    assert body["summary"]["refused"] == 1
    anchor = body["summary"]["access_log_anchor"]
    assert (anchor["segment"], anchor["seq"], anchor["place"]) == ("access_log", 5, "usage report")
    check = audit.verify_chain(pg_settings)
    assert check.ok, check.problems
    assert check.anchors == 2  # the first append's hourly anchor, and the report's


def test_retention_deletes_old_records_and_verify_starts_after_them(
    pg_settings: Settings,
) -> None:
    for months_ago in (15, 14, 13, 2, 0):
        _add(pg_settings, NOW - dt.timedelta(days=31 * months_ago))
    assert audit.expire(pg_settings, 12, now=NOW) == ["access_log records 1 to 3"]
    assert [r["seq"] for r in audit.records(pg_settings)] == [4, 5]
    check = audit.verify_chain(pg_settings)
    assert check.ok, check.problems
    assert check.records == 2
    assert audit.expire(pg_settings, 12, now=NOW) == []  # nothing more to expire
    with psycopg.connect(str(pg_settings.serve.database_url)) as con:
        kinds = con.execute("SELECT kind, seq FROM access_log_anchors ORDER BY id").fetchall()
    assert ("expired", 3) in kinds


def test_retention_keeps_the_newest_record_however_old(pg_settings: Settings) -> None:
    for months_ago in (30, 29):
        _add(pg_settings, NOW - dt.timedelta(days=31 * months_ago))
    assert audit.expire(pg_settings, 12, now=NOW) == ["access_log records 1 to 1"]
    check = audit.verify_chain(pg_settings)
    assert check.ok and check.records == 1, check.problems


def test_a_deletion_forged_as_an_expiry_is_named(pg_settings: Settings) -> None:
    for i in range(6):
        _add(pg_settings, NOW + dt.timedelta(minutes=i))
    audit.anchor(pg_settings, "purge run 1")
    with psycopg.connect(str(pg_settings.serve.database_url), autocommit=True) as con:
        con.execute("DELETE FROM access_log WHERE seq <= 3")
    check = audit.verify_chain(pg_settings)
    assert not check.ok
    assert "record 4: chain broken" in str(check.problem)


@pytest.fixture
def loaded(make_settings: Callable[..., Settings], drop: Drop, pg_url: str) -> Settings:
    settings = make_settings()
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7ABC123")]))
    ingest_source(settings, "ncic")
    return with_database(settings, pg_url)


def test_the_command_line_logs_into_the_database_and_verify_checks_it(loaded: Settings) -> None:
    args = ["lookup", "7ABC123", "--user", "jdoe", "--org", "CA0190000", "--purpose", "patrol"]
    assert runner.invoke(app, [*args, "-c", _config(loaded), "--json"]).exit_code == 0
    refused = ["lookup", "7ABC123", "--user", "jdoe", "--org", "CA0190000", "--purpose", "fun"]
    assert runner.invoke(app, [*refused, "-c", _config(loaded)]).exit_code != 0
    logged = list(audit.records(loaded))
    assert [(r["channel"], r["outcome"][:7]) for r in logged] == [
        ("cli", "granted"), ("cli", "refused"),
    ]  # fmt: skip
    assert not audit.segment_paths(loaded.data_dir)
    result = runner.invoke(app, ["audit", "verify", "-c", _config(loaded)])
    assert result.exit_code == 0, result.output
    assert "access log intact: 2 records in PostgreSQL at" in result.output
    with psycopg.connect(str(loaded.serve.database_url), autocommit=True) as con:
        con.execute("UPDATE access_log SET \"user\" = 'someone' WHERE seq = 1")
    result = runner.invoke(app, ["audit", "verify", "-c", _config(loaded)])
    assert result.exit_code == 1
    assert "record 1: record was altered" in result.output


def test_the_report_command_reads_the_database(loaded: Settings, tmp_path: Path) -> None:
    _add(loaded, NOW)
    out = tmp_path / "usage.json"
    result = runner.invoke(
        app, ["audit", "report", "-c", _config(loaded), "--format", "json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["summary"]["accesses"] == 1
    exported = runner.invoke(app, ["audit", "export", "-c", _config(loaded)])
    assert exported.exit_code == 0 and "7ABC123" in exported.output
