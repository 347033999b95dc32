"""The access log through the command line: a torn tail never stops a lookup or its log
record; ``audit verify`` names what it found; ``audit export`` writes no live formulas."""

from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

from hotlist import audit, csvsafe
from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from tests.builders import Drop, ncic_file, ncic_line

runner = CliRunner()


@pytest.fixture
def loaded(settings: Settings, drop: Drop) -> Settings:
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7ABC123")]))
    ingest_source(settings, "ncic")
    return settings


def _config(settings: Settings) -> str:
    return str(settings.data_dir.parent / "hotlist.toml")


def _lookup(settings: Settings, user: str = "jdoe") -> int:
    args = ["lookup", "7ABC123", "--user", user, "--org", "CA0190000", "--purpose", "patrol"]
    return runner.invoke(app, [*args, "-c", _config(settings), "--json"]).exit_code


def test_a_lookup_after_a_torn_tail_is_answered_and_logged(loaded: Settings) -> None:
    assert _lookup(loaded) == 0
    with open(audit.log_path(loaded.data_dir), "ab") as fh:
        fh.write(b'{"channel":"cli","client":"","data_element":"plate 7AB')
    assert _lookup(loaded, user="asmith") == 0
    last = list(audit.records(loaded.data_dir))[-1]
    assert (last["user"], last["outcome"]) == ("asmith", "granted: 1 hits")
    result = runner.invoke(app, ["audit", "verify", "-c", _config(loaded)])
    assert result.exit_code == 0, result.stderr
    assert "torn tail kept as evidence" in result.stderr
    assert "3 records" in result.stdout  # two lookups and the logged recovery


def test_audit_verify_fails_on_a_truncated_log_naming_the_anchor(loaded: Settings) -> None:
    for _ in range(3):
        _lookup(loaded)
    audit.anchor(loaded.data_dir, "deletion report")
    path = audit.log_path(loaded.data_dir)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:1]))
    result = runner.invoke(app, ["audit", "verify", "-c", _config(loaded)])
    assert result.exit_code == 1
    assert "truncated" in result.stderr
    assert "deletion report" in result.stderr


def test_audit_export_neutralizes_a_formula_in_a_user_name(loaded: Settings) -> None:
    hostile = "=cmd|' /C calc'!A0"
    _lookup(loaded, user=hostile)
    result = runner.invoke(app, ["audit", "export", "-c", _config(loaded)])
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["user"] == "'" + hostile
    assert csvsafe.restore(row["user"]) == hostile
    assert row["organization"] == "CA0190000"  # codes are written unchanged
    assert row["hash"] == next(audit.records(loaded.data_dir))["hash"]
