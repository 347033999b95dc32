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


def test_names_that_look_like_markup_are_shown_as_typed(settings: Settings) -> None:
    config = config_of(settings)
    added = runner.invoke(
        app,
        ["consumers", "add", "[/b]c7", "--agency-ori", "CA0190000", "--agency-name",
         "[red]PD", "--agency-kind", "ca-local", "-c", config],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    listing = runner.invoke(app, ["consumers", "list", "-c", config])
    assert listing.exit_code == 0, listing.output
    assert "[/b]c7" in listing.stdout
    assert "[red]PD" in listing.stdout


def test_a_key_file_that_cannot_be_written_is_refused_before_the_consumer_exists(
    settings: Settings, tmp_path: Path
) -> None:
    from hotlist.serve import consumers as reg

    key_file = tmp_path / "no such dir" / "car.key"
    result = runner.invoke(
        app,
        ["consumers", "add", "car-7", "--agency-ori", "CA0190000", "--agency-name", "PD",
         "--agency-kind", "ca-local", "--key-file", str(key_file), "-c", config_of(settings)],
    )  # fmt: skip
    assert result.exit_code == ExitCode.USAGE
    assert f"cannot write --key-file {key_file}" in result.stderr
    assert not settings.data_dir.exists() or reg.all_consumers(settings.data_dir) == []


def test_an_out_path_that_cannot_be_written_is_named(tmp_path: Path, settings: Settings) -> None:
    out = tmp_path / "missing" / "report.html"
    result = runner.invoke(
        app, ["report", "deletions", "-c", config_of(settings), "--out", str(out)]
    )
    assert result.exit_code == ExitCode.USAGE
    assert f"cannot write --out {out}" in result.stderr
    a_file = tmp_path / "copy"
    a_file.write_text("")
    pulled = runner.invoke(
        app,
        ["pull", "--server", "http://127.0.0.1:9", "--key-file", str(a_file), "--user", "u",
         "--purpose", "patrol", "--out", str(a_file)],
    )  # fmt: skip
    assert pulled.exit_code == ExitCode.USAGE
    assert "is not a directory" in pulled.stderr
