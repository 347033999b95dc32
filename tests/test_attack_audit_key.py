"""The access log's key, deleted under a log that already uses it: nothing silently makes
a new one (which would chain every later record with a key no anchor knows, and leave
the earlier records unverifiable); the writer refuses, naming the key, and logs nothing
under a stranger's key. The very first use still creates it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotlist import audit
from hotlist.audit.keys import key_path, load_key
from hotlist.cli import app
from hotlist.config import ConfigError, Settings
from hotlist.ingest import ingest_source
from tests.builders import Drop, ncic_file, ncic_line

runner = CliRunner()


@pytest.fixture
def loaded(settings: Settings, drop: Drop) -> Settings:
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7ABC123")]))
    ingest_source(settings, "ncic")
    return settings


def _lookup(settings: Settings) -> list[str]:
    config = str(settings.data_dir.parent / "hotlist.toml")
    args = ["lookup", "7ABC123", "--user", "jdoe", "--org", "CA0190000", "--purpose", "patrol"]
    return [*args, "-c", config]


def _log_bytes(data_dir: Path) -> dict[str, bytes]:
    folder = data_dir / "audit"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_lookup_without_the_key_of_a_log_in_use_is_refused_naming_the_key(
    loaded: Settings,
) -> None:
    assert runner.invoke(app, _lookup(loaded)).exit_code == 0
    key_path(loaded.data_dir).unlink()
    before = _log_bytes(loaded.data_dir)

    result = runner.invoke(app, _lookup(loaded))

    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert str(key_path(loaded.data_dir)) in result.stderr
    assert "7ABC123" not in result.stdout  # no answer that is not logged
    assert not key_path(loaded.data_dir).exists()  # no stranger's key was made
    assert _log_bytes(loaded.data_dir) == before


def test_a_new_key_is_refused_while_anchors_exist_even_if_the_log_was_emptied(
    loaded: Settings,
) -> None:
    """Deleting the log and its key together must not pass as a fresh start: the anchors
    kept outside the log still name records made with the old key."""
    audit.append(
        loaded.data_dir,
        audit.AccessRecord("jdoe", "CA0190000", "patrol", "plate X", "granted", "cli"),
    )
    audit.anchor(loaded.data_dir, "deletion report")
    for segment in (loaded.data_dir / "audit").glob("access-*.jsonl"):
        segment.unlink()
    key_path(loaded.data_dir).unlink()

    with pytest.raises(ConfigError, match=r"audit-hmac\.key"):
        load_key(loaded.data_dir)
    assert not key_path(loaded.data_dir).exists()


def test_the_first_use_of_a_new_data_dir_still_creates_the_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    audit.append(
        data_dir, audit.AccessRecord("jdoe", "CA0190000", "patrol", "plate X", "granted", "cli")
    )
    assert len(key_path(data_dir).read_bytes()) == 32
    assert key_path(data_dir).stat().st_mode & 0o777 == 0o600
