"""A data_dir that names something other than a directory (a file, a symlink to nothing)
is a configuration error every command reports in one line, exit 2, never a traceback
and never a silent empty hotlist."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import ConfigError, load_settings

runner = CliRunner()

COMMANDS = [
    ["status"],
    ["verify"],
    ["lookup", "7ABC123", "--user", "jdoe", "--org", "CA0190000", "--purpose", "patrol"],
    ["ingest", "ncic", "--no-prefect"],
    ["purge"],
    ["report", "deletions", "--format", "json"],
    ["audit", "verify"],
]


def _config(tmp_path: Path, data_dir: Path) -> Path:
    config = tmp_path / "hotlist.toml"
    config.write_text(f'data_dir = "{data_dir}"\n', encoding="utf-8")
    return config


@pytest.fixture(params=["file", "dangling symlink"])
def not_a_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "da'ta é"
    if request.param == "file":
        path.write_text("not a directory\n")
    else:
        path.symlink_to(tmp_path / "gone")
    return path


def test_loading_a_configuration_whose_data_dir_is_not_a_directory_fails_naming_it(
    tmp_path: Path, not_a_dir: Path
) -> None:
    with pytest.raises(ConfigError, match="not a directory") as failed:
        load_settings(_config(tmp_path, not_a_dir), environ={})
    assert str(not_a_dir) in str(failed.value)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_reports_a_data_dir_that_is_not_a_directory_without_a_traceback(
    tmp_path: Path, not_a_dir: Path, command: list[str]
) -> None:
    result = runner.invoke(app, [*command, "-c", str(_config(tmp_path, not_a_dir))])
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert "not a directory" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "gone").exists()  # nothing was created through the symlink
