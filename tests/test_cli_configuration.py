"""Wrong configuration is an error, never an empty hotlist (#13).

Commands that only read never create ``data_dir``: pointed at a directory that does not
exist (a typo), they fail loudly, naming it. A lookup where no feed was ever loaded fails
too, instead of answering "no hits". Only commands that write create ``data_dir``, 0700.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotlist import audit
from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import IngestFailed, ingest_source
from tests.builders import Drop, ncic_file, ncic_line
from tests.cli_support import config_of

runner = CliRunner()

LOOKUP = ["lookup", "7ABC123", "--user", "jdoe", "--org", "CA0190000", "--purpose", "patrol"]
REPORT_LOOKUP = ["report", "lookup", "7ABC123", "--state", "CA", "--user", "a", "--org", "CA0190000"]  # fmt: skip
READ_ONLY = {
    "status": ["status"],
    "status --json": ["status", "--json"],
    "lookup": LOOKUP,
    "purge": ["purge"],
    "report deletions": ["report", "deletions"],
    "report lookup": REPORT_LOOKUP,
    "audit verify": ["audit", "verify"],
    "audit export": ["audit", "export"],
    "consumers list": ["consumers", "list"],
    "consumers revoke": ["consumers", "revoke", "car-7"],
    "consumers rotate": ["consumers", "rotate", "car-7"],
    # an address no interface has: should the check ever go, the test fails, not hangs
    "serve": ["serve", "--host", "192.0.2.1"],
}


@pytest.fixture
def mistyped(tmp_path: Path, drop: Drop) -> tuple[Path, Path]:
    """A configuration whose data_dir does not exist: (config, data_dir)."""
    config = tmp_path / "typo.toml"
    config.write_text(f'data_dir = "dtaa"\n[sources.ncic]\nurl = "file://{drop.root}"\n')
    return config, tmp_path / "dtaa"


@pytest.mark.parametrize("command", READ_ONLY.values(), ids=READ_ONLY.keys())
def test_a_command_that_reads_fails_on_a_mistyped_data_dir_and_creates_nothing(
    mistyped: tuple[Path, Path], command: list[str]
) -> None:
    config, data_dir = mistyped
    result = runner.invoke(app, [*command, "-c", str(config)])
    assert result.exit_code == 3, result.output
    assert f"no hotlist loaded at {data_dir}" in result.stderr
    assert not data_dir.exists()


def test_verify_of_a_mistyped_data_dir_fails_and_creates_nothing(
    mistyped: tuple[Path, Path], tmp_path: Path
) -> None:
    config, data_dir = mistyped
    result = runner.invoke(
        app, ["verify", "-c", str(config)], env={"PREFECT_HOME": str(tmp_path / "ph")}
    )
    assert result.exit_code == 1
    assert "data_dir does not exist" in result.stderr
    assert not data_dir.exists()


def test_without_a_configuration_status_creates_no_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert result.stderr.startswith("configuration error: ")
    assert list(tmp_path.iterdir()) == []


def test_a_lookup_where_no_feed_was_ever_loaded_fails_loudly_and_is_logged(
    settings: Settings, drop: Drop
) -> None:
    cut = ncic_file([ncic_line("V000000001", "7ABC123")]).rstrip("\n")  # cut mid-line
    drop.put("VEHEXTRT.txt", cut)
    with pytest.raises(IngestFailed):
        ingest_source(settings, "ncic")
    assert settings.data_dir.is_dir()
    result = runner.invoke(app, [*LOOKUP, "-c", config_of(settings), "--json"])
    assert result.exit_code == 3
    assert result.stdout == ""
    assert f"no hotlist loaded at {settings.data_dir}" in result.stderr
    [record] = list(audit.records(settings.data_dir))
    assert record["outcome"] == "failed: no hotlist loaded"


def test_a_lookup_in_an_empty_data_dir_fails_loudly(settings: Settings) -> None:
    settings.data_dir.mkdir(mode=0o700)
    result = runner.invoke(app, [*LOOKUP, "-c", config_of(settings)])
    assert result.exit_code == 3
    assert f"no hotlist loaded at {settings.data_dir}" in result.stderr
    assert "no hits" not in result.stdout


def test_a_lookup_where_one_feed_is_loaded_answers_from_it(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([]))
    ingest_source(settings, "ncic")
    result = runner.invoke(app, [*LOOKUP, "-c", config_of(settings)])
    assert result.exit_code == 0, result.stderr
    assert "no hits" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["consumers", "add", "car-7", "--agency-ori", "CA0190000", "--agency-name", "PD",
         "--agency-kind", "ca-local"],
        ["ingest", "ncic"],
    ],
    ids=["consumers add", "ingest"],
)  # fmt: skip
def test_a_command_that_writes_creates_data_dir_private(
    tmp_path: Path, drop: Drop, command: list[str]
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([]))
    config = tmp_path / "new.toml"
    config.write_text(f'data_dir = "srv/hotlist"\n[sources.ncic]\nurl = "file://{drop.root}"\n')
    result = runner.invoke(
        app, [*command, "-c", str(config)], env={"PREFECT_HOME": str(tmp_path / "ph")}
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "srv" / "hotlist").stat().st_mode) == 0o700


def test_commands_that_read_work_in_a_data_dir_with_a_quote_a_space_and_non_ascii(
    tmp_path: Path, drop: Drop
) -> None:
    from hotlist.config import load_settings
    from tests.cli_support import load_sample

    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "it\'s a d\u00efr"\n[sources.svs]\nurl = "file://{drop.root}"\n'
        f'[sources.ncic]\nurl = "file://{drop.root}"\n'
    )
    load_sample(load_settings(config, environ={}), drop)
    for command in (LOOKUP, REPORT_LOOKUP, ["status"], ["audit", "verify"]):
        result = runner.invoke(app, [*command, "-c", str(config)])
        assert result.exit_code == 0, (command, result.output)
