"""A lookup from the command line obeys the one access policy (SB 34, SB 54), and every
answer, granted or refused, is in the access log under the name the person typed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hotlist import audit
from hotlist.cli import app
from hotlist.config import Settings
from tests.builders import Drop
from tests.cli_support import config_of, load_sample

runner = CliRunner()


@pytest.fixture
def loaded(settings: Settings, drop: Drop) -> Settings:
    return load_sample(settings, drop)


def _lookup(settings: Settings, user: str, org: str, purpose: str = "patrol") -> int:
    result = runner.invoke(
        app,
        ["lookup", "7ABC123", "--user", user, "--org", org, "--purpose", purpose,
         "-c", config_of(settings), "--json"],
    )  # fmt: skip
    return result.exit_code


@pytest.mark.parametrize(
    ("user", "org", "why"),
    [
        ("", "", "California"),
        ("   ", "CA0190000", "named"),
        ("jdoe", "NV0190000", "California"),
        ("jdoe", "CA019000", "California"),  # 8 characters
        ("jdoe", "\uff23\uff210190000", "California"),  # full-width CA is not an ORI
        ("jdoe", "CA-190000", "California"),
    ],
)
def test_a_lookup_without_a_named_user_and_a_california_ori_is_refused_and_logged(
    loaded: Settings, user: str, org: str, why: str
) -> None:
    assert _lookup(loaded, user, org) == 4
    [record] = list(audit.records(loaded.data_dir))
    assert record["outcome"].startswith("refused: ")
    assert why in record["outcome"]
    assert record["organization"] == org


def test_a_lawful_lookup_logs_the_ori_and_purpose_as_compared(loaded: Settings) -> None:
    assert _lookup(loaded, " jdoe ", "ca0190000", "Patrol") == 0
    [record] = list(audit.records(loaded.data_dir))
    assert (record["user"], record["organization"], record["purpose"]) == (
        "jdoe",
        "CA0190000",
        "patrol",
    )
    assert record["outcome"] == "granted: 3 hits"


def test_a_deletion_report_lookup_obeys_the_same_policy(loaded: Settings) -> None:
    args = ["report", "lookup", "7ABC123", "--state", "CA", "-c", config_of(loaded)]
    refused = runner.invoke(app, [*args, "--user", "auditor", "--org", "NV0190000"])
    assert refused.exit_code == 4
    assert "California" in refused.stderr
    nameless = runner.invoke(app, [*args, "--user", "", "--org", "CA0190000"])
    assert nameless.exit_code == 4
    granted = runner.invoke(app, [*args, "--user", "auditor", "--org", "CA0190000"])
    assert granted.exit_code == 0, granted.stderr
    outcomes = [r["outcome"].split(":")[0] for r in audit.records(loaded.data_dir)]
    assert outcomes == ["refused", "refused", "granted"]


def test_a_utf8_user_is_logged_as_typed_whatever_the_locale(loaded: Settings) -> None:
    """Under a C locale without UTF-8 mode, Python hands ``José`` to the program as
    ``Jos\\udcc3\\udca9``; the log must hold the name, not the escaped bytes."""
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "hotlist", "lookup", "7ABC123", "--user", "José",
         "--org", "CA0190000", "--purpose", "patrol", "-c", config_of(loaded), "--json"],
        capture_output=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert len(json.loads(done.stdout)["hits"]) == 3
    [record] = list(audit.records(loaded.data_dir))
    assert record["user"] == "José"


def test_a_user_in_decomposed_unicode_is_logged_composed(loaded: Settings) -> None:
    assert _lookup(loaded, "Jose\u0301", "CA0190000") == 0
    [record] = list(audit.records(loaded.data_dir))
    assert record["user"] == "Jos\u00e9"


@pytest.mark.parametrize("user", ["jdoe\x1b[2J", "jdoe\u202e", "a\nb"])
def test_a_user_with_control_characters_is_a_usage_error(loaded: Settings, user: str) -> None:
    assert _lookup(loaded, user, "CA0190000") == 2
    assert list(audit.records(loaded.data_dir)) == []
