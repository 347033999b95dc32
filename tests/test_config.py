"""A missing configuration is an error, never a guessed ./data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hotlist.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_without_a_configuration_file_or_data_dir_loading_fails_and_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=r"no configuration: pass --config PATH or set HOTLIST_CONFIG"
    ):
        load_settings(None, environ={})
    assert list(tmp_path.iterdir()) == []


def test_an_empty_hotlist_config_is_no_configuration(tmp_path: Path) -> None:
    """As a deployment made without HOTLIST_CONFIG in the deploying shell would have it."""
    with pytest.raises(ConfigError, match="no configuration"):
        load_settings(None, environ={"HOTLIST_CONFIG": ""})


def test_a_deployment_made_without_hotlist_config_says_so() -> None:
    """`prefect deploy` leaves ``{{ $HOTLIST_CONFIG }}`` as it is when the variable is unset."""
    with pytest.raises(ConfigError, match=r"not set in the shell that ran `prefect deploy`"):
        load_settings(None, environ={"HOTLIST_CONFIG": "{{ $HOTLIST_CONFIG }}"})


def test_an_absolute_data_dir_from_the_environment_is_an_explicit_configuration(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, environ={"HOTLIST_DATA_DIR": str(tmp_path / "state")})
    assert settings.data_dir == tmp_path / "state"
    assert not (tmp_path / "state").exists()  # loading creates nothing


def test_a_relative_data_dir_without_a_configuration_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"HOTLIST_DATA_DIR='data' is relative"):
        load_settings(None, environ={"HOTLIST_DATA_DIR": "data"})


def test_a_relative_data_dir_in_a_file_is_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / 'an agency\'s "config" dir ü'
    folder.mkdir()
    (folder / "hotlist.toml").write_text('data_dir = "state"\n', encoding="utf-8")
    assert load_settings(folder / "hotlist.toml", environ={}).data_dir == folder / "state"


def test_a_command_run_without_a_configuration_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    """`hotlist status` in an empty directory with no configuration: a clear error and no
    ./data (the CLI turns ConfigError into exit 2)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "hotlist", "status"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no configuration" in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []
