"""The command line: status, lookup with its SB 34 access log, audit verify, file modes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotlist import audit
from hotlist.cli import app
from hotlist.config import Settings
from tests.builders import Drop, ncic_file, ncic_line
from tests.cli_support import load_sample

runner = CliRunner()


@pytest.fixture
def loaded(settings: Settings, drop: Drop) -> Settings:
    return load_sample(settings, drop)


def _config(settings: Settings) -> str:
    return str(settings.data_dir.parent / "hotlist.toml")


def _lookup(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        [
            "lookup",
            *args,
            "--user",
            "jdoe",
            "--org",
            "CA0190000",
            "-c",
            _config(settings),
            "--json",
        ],
    )
    return result.exit_code, result.stdout


def test_lookup_finds_a_plate_in_every_list_and_logs_the_access(loaded: Settings) -> None:
    code, out = _lookup(loaded, "7abc-123", "--purpose", "patrol")
    assert code == 0
    hits = json.loads(out)["hits"]
    assert {(h["list"], h["source"], h["state"]) for h in hits} == {
        ("stolen_vehicle", "ncic", "CA"),
        ("stolen_plate", "ncic", "NV"),
        ("stolen_vehicle", "clew-svs", "CA"),
    }
    code, out = _lookup(loaded, "7ABC123", "--state", "NV", "--purpose", "patrol")
    assert [h["record_id"] for h in json.loads(out)["hits"]] == ["P000000002"]
    [first, second] = list(audit.records(loaded.data_dir))
    assert (first["user"], first["organization"], first["purpose"]) == (
        "jdoe",
        "CA0190000",
        "patrol",
    )
    assert first["data_element"] == "plate 7abc-123"
    assert first["outcome"] == "granted: 3 hits"
    assert second["prev"] == first["hash"]


@pytest.mark.parametrize("purpose", ["immigration-enforcement", "Immigration", "curiosity"])
def test_lookup_refuses_a_purpose_outside_the_policy_and_logs_the_refusal(
    loaded: Settings, purpose: str
) -> None:
    code, _ = _lookup(loaded, "7ABC123", "--purpose", purpose)
    assert code == 4
    [record] = list(audit.records(loaded.data_dir))
    assert record["outcome"].startswith("refused")
    if "mmigration" in purpose:
        assert "SB 54" in record["outcome"]


def test_immigration_enforcement_cannot_be_configured_as_a_purpose(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[access]\npurposes = ["patrol", "immigration_enforcement"]\n')
    result = runner.invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == 2
    assert "SB 54" in result.stderr


def test_audit_verify_detects_an_edited_a_removed_and_a_reordered_record(loaded: Settings) -> None:
    for _ in range(3):
        _lookup(loaded, "7ABC123", "--purpose", "patrol")
    result = runner.invoke(app, ["audit", "verify", "-c", _config(loaded)])
    assert result.exit_code == 0
    assert "3 records" in result.stdout
    path = audit.log_path(loaded.data_dir)
    original = path.read_text().splitlines(keepends=True)
    tampered = {
        "edited": [original[0], original[1].replace("jdoe", "nobody"), original[2]],
        "removed": [original[0], original[2]],
        "reordered": [original[1], original[0], original[2]],
    }
    for lines in tampered.values():
        path.write_text("".join(lines))
        result = runner.invoke(app, ["audit", "verify", "-c", _config(loaded)])
        assert result.exit_code == 1
        assert "tampered" in result.stderr


def test_status_shows_each_feed_fresh_or_stale(loaded: Settings) -> None:
    result = runner.invoke(app, ["status", "-c", _config(loaded), "--json"])
    rows = {r["feed"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"svs", "sfr", "slr", "ncic"}
    assert rows["ncic"]["entries"] == 2
    assert rows["ncic"]["stale"] is False
    assert rows["ncic"]["last_file"] == "VEHEXTRT.txt"
    assert result.exit_code == 0


def test_status_calls_a_never_loaded_feed_stale(settings: Settings) -> None:
    result = runner.invoke(app, ["status", "-c", _config(settings)])
    assert result.exit_code == 3
    assert "STALE" in result.stdout


def test_lookup_and_status_never_start_prefect(loaded: Settings) -> None:
    code = (
        "import sys; from hotlist.cli import app;"
        f"sys.argv = ['hotlist', 'status', '-c', {_config(loaded)!r}];"
        "import atexit; atexit.register(lambda: print('PREFECT' if 'prefect' in sys.modules else 'NO-PREFECT'));"
        "app()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().endswith("NO-PREFECT")


def test_state_files_are_private(loaded: Settings) -> None:
    _lookup(loaded, "7ABC123", "--purpose", "patrol")
    for path in [loaded.data_dir, *loaded.data_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = 0o700 if path.is_dir() else 0o600
        assert mode == expected, f"{path} has mode {oct(mode)}"


def test_an_sftp_source_without_a_pinned_host_key_is_refused_at_load(tmp_path: Path) -> None:
    config = tmp_path / "sftp.toml"
    config.write_text('[sources.ncic]\nurl = "sftp://hotlist@drop.example:22/outbound"\n')
    result = runner.invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == 2
    assert "known_hosts" in result.stderr


def test_environment_overrides_the_configuration_file(tmp_path: Path) -> None:
    from hotlist.config import load_settings

    config = tmp_path / "c.toml"
    config.write_text('data_dir = "here"\n[sources.ncic]\nurl = "file:///a"\n')
    settings = load_settings(
        config,
        {"HOTLIST_DATA_DIR": "/var/lib/hotlist", "HOTLIST_SOURCES__NCIC__HIT_TYPES": '["V"]'},
    )
    assert settings.data_dir == Path("/var/lib/hotlist")
    assert settings.source("ncic").hit_types == ("V",)
    assert settings.source("ncic").url == "file:///a"


def test_a_manual_ingest_applies_then_purges_and_verifies(
    settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7ABC123")]))
    result = runner.invoke(
        app, ["ingest", "ncic", "-c", _config(settings)], env={"PREFECT_HOME": str(tmp_path / "ph")}
    )
    assert result.exit_code == 0, result.stderr
    assert "no Prefect API configured: running in-process" in result.stderr
    assert "applied as version 1" in result.stdout
    assert "purge run 1" in result.stdout
    assert "PASS" in result.stdout


def test_audit_export_gives_auditors_csv_since_a_date(loaded: Settings) -> None:
    import csv
    import io

    _lookup(loaded, "7ABC123", "--purpose", "patrol")
    _lookup(loaded, "7ABC123", "--purpose", "immigration")
    result = runner.invoke(app, ["audit", "export", "-c", _config(loaded), "--since", "2000-01-01"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["outcome"][:7] for r in rows] == ["granted", "refused"]
    assert {"time", "user", "organization", "purpose", "data_element"} <= set(rows[0])
    later = runner.invoke(app, ["audit", "export", "-c", _config(loaded), "--since", "2999-01-01"])
    assert len(list(csv.DictReader(io.StringIO(later.stdout)))) == 0


def test_consumer_keys_are_shown_once_or_written_private_and_can_be_rotated_and_revoked(
    settings: Settings, tmp_path: Path
) -> None:
    from hotlist.serve import consumers as reg

    config = _config(settings)
    key_file = tmp_path / "patrol.key"
    added = runner.invoke(
        app,
        ["consumers", "add", "car-7", "--agency-ori", "CA0190000", "--agency-name", "PD",
         "--agency-kind", "ca-local", "--key-file", str(key_file), "-c", config],
    )  # fmt: skip
    assert added.exit_code == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key not in added.stdout
    assert reg.by_key(settings.data_dir, key) is not None
    assert key not in reg.registry_path(settings.data_dir).read_bytes().decode("latin-1")
    rotated = runner.invoke(app, ["consumers", "rotate", "car-7", "-c", config])
    assert reg.by_key(settings.data_dir, key) is None
    assert reg.by_key(settings.data_dir, rotated.stdout.strip()) is not None
    assert runner.invoke(app, ["consumers", "revoke", "car-7", "-c", config]).exit_code == 0
    refused = runner.invoke(
        app,
        ["consumers", "add", "fed", "--agency-ori", "DC0000000", "--agency-name", "F",
         "--agency-kind", "federal", "-c", config],
    )  # fmt: skip
    assert "SB 34" in refused.stderr
    listing = runner.invoke(app, ["consumers", "list", "-c", config]).stdout
    assert "revoked" in listing
    assert "federal" in listing


def test_a_malformed_since_date_is_refused_with_its_format(loaded: Settings) -> None:
    for command in (["audit", "export"], ["report", "deletions"]):
        result = runner.invoke(app, [*command, "-c", _config(loaded), "--since", "last week"])
        assert result.exit_code == 2
        assert "2026-11-22" in result.stderr
