"""``hotlist policy show`` prints the SB 34 policy ``hotlist serve`` serves (#12): built
from the configuration, the parts it leaves out named on standard error, and an
operator's own file in its place when one is configured."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import load_settings
from hotlist.policy import render_policy

runner = CliRunner()

OPERATOR = """
[access]
purposes = ["patrol", "amber-alert"]
[access.policy]
agency_name = "Demo Police Department"
custodian_title = "Chief of Police"
authorized_roles = ["Patrol officer"]
contact = "records@demo-pd.example"
"""


def test_policy_show_prints_the_built_policy_and_names_what_is_not_stated(
    tmp_path: Path,
) -> None:
    config = tmp_path / "hotlist.toml"
    config.write_text('data_dir = "data"\n' + OPERATOR)
    result = runner.invoke(app, ["policy", "show", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout == render_policy(load_settings(config, environ={}))
    assert "Demo Police Department" in result.stdout
    assert "[access.policy] training" in result.stderr
    assert "agency_name" not in result.stderr
    assert not (tmp_path / "data").exists()  # reading the policy needs no store


def test_an_operators_own_policy_file_is_printed_instead(tmp_path: Path) -> None:
    own = tmp_path / "policy.txt"
    own.write_text("Our own ALPR usage and privacy policy.\n")
    config = tmp_path / "hotlist.toml"
    config.write_text(f'[access]\nprivacy_policy = "{own}"\n')
    result = runner.invoke(app, ["policy", "show", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout == own.read_text()
    own.unlink()
    missing = runner.invoke(app, ["policy", "show", "-c", str(config)])
    assert missing.exit_code == 2
    assert f"cannot read {own}" in missing.stderr
