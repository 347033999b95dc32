"""One way to fail: a known error of the library is one line, ``label: message``, with its
exit code; never a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.cli.common import ExitCode, known_error
from hotlist.config import ConfigError, Settings
from tests.cli_support import config_of

runner = CliRunner()


def test_a_library_error_is_one_line_with_its_exit_code(settings: Settings) -> None:
    settings.data_dir.mkdir(mode=0o700)
    result = runner.invoke(app, ["consumers", "revoke", "nobody", "-c", config_of(settings)])
    assert result.exit_code == ExitCode.FAILED
    assert result.stderr.startswith("consumers: ")
    assert "nobody" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_configuration_error_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("data_dir = [\n")
    result = runner.invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("configuration error: ")
    assert known_error(ConfigError("x")) is not None
    assert known_error(ValueError("x")) is None


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no.key"
    result = runner.invoke(
        app,
        ["pull", "--server", "http://127.0.0.1:9", "--key-file", str(missing), "--user", "u",
         "--purpose", "patrol", "--out", str(tmp_path / "copy")],
    )  # fmt: skip
    assert result.exit_code == ExitCode.USAGE
    assert f"cannot read --key-file {missing}" in result.stderr
    assert not (tmp_path / "copy").exists()


def test_every_known_error_names_an_exception_class_of_the_library() -> None:
    """Should a class move, its errors would show as tracebacks again: this fails first."""
    import importlib

    from hotlist.cli.common import KNOWN_ERRORS

    for known in KNOWN_ERRORS:
        cls = getattr(importlib.import_module(known.module), known.name)
        assert isinstance(cls, type) and issubclass(cls, Exception), known
