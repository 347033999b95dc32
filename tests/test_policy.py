"""The SB 34 usage and privacy policy: built from what the code enforces, every element the
law asks for stated, the operator's parts from ``[access.policy]`` or marked not stated,
served publicly by ``hotlist serve`` unless the operator's own file replaces it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from hotlist import audit
from hotlist.config import ConfigError, Settings
from hotlist.policy import NOT_STATED, SCHEDULES, missing_parts, render_policy
from hotlist.serve.app import create_app
from tests.serving import running_api, server_process

REPO = Path(__file__).resolve().parent.parent

OPERATOR = """
[access]
purposes = ["patrol", "amber-alert", "Kidnapping-Response"]
[access.policy]
agency_name = "Demo Police Department"
custodian_title = "Chief of Police"
authorized_roles = ["Patrol officer", "Records technician"]
training = "CLETS/NCIC operator certification and the department's ALPR course"
contact = "records@demo-pd.example, (555) 010-0000"
[purge]
sla_hours = 0.5
consumer_sla_hours = 6
"""


@pytest.fixture
def operator_settings(tmp_path: Path) -> Settings:
    from hotlist.config import load_settings

    config = tmp_path / "hotlist.toml"
    config.write_text('data_dir = "data"\n' + OPERATOR)
    return load_settings(config, environ={})


def _flat(text: str) -> str:
    """The text with its line wrapping undone."""
    return " ".join(text.split())


#: Each element Civil Code 1798.90.51(b)(2) and 1798.90.53(b)(2) require, by its heading.
ELEMENTS = (
    "Authorized purposes",
    "Authorized users and their training",
    "Monitoring for security and compliance",
    "Sharing and transfer",
    "Official custodian",
    "Accuracy and correction of errors",
    "Retention and destruction",
)


def test_the_policy_states_every_element_sb34_requires_with_the_operators_parts(
    operator_settings: Settings,
) -> None:
    text = _flat(render_policy(operator_settings))
    for element in ELEMENTS:
        assert element in text
    for given in (
        "Demo Police Department",
        "Chief of Police",
        "Patrol officer; Records technician",
        "the department's ALPR course",
        "records@demo-pd.example",
    ):
        assert given in text
    assert NOT_STATED.upper() not in text
    assert missing_parts(operator_settings) == []


def test_the_policy_is_built_from_what_the_configuration_enforces(
    operator_settings: Settings,
) -> None:
    listed = render_policy(operator_settings)
    for purpose in ("  - patrol", "  - amber-alert", "  - kidnapping-response"):
        assert purpose in listed  # as compared: normalized
    assert "  - investigation" not in listed
    text = _flat(listed)
    assert "ca-local, ca-state" in text and "federal, out-of-state, private" in text
    assert "Immigration enforcement is never a purpose (SB 54" in text
    assert "ice," in text and "deport" in text
    assert "within 0.5 hours" in text  # the purge SLA
    assert "within 6 hours" in text  # the consumer SLA
    assert "The access log is kept 2 years" in text
    assert "every 2 hours" in text and "twice a day" in text and "hourly sweep" in text


def test_every_part_the_operator_leaves_out_is_marked_not_stated_and_listed(
    settings: Settings,
) -> None:
    text = render_policy(settings)
    assert text.count("NOT STATED") >= 5
    missing = missing_parts(settings)
    for key in ("agency_name", "custodian_title", "authorized_roles", "training", "contact"):
        assert any(f"[access.policy] {key}" in part for part in missing)


def test_blank_operator_parts_count_as_not_stated(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    given = settings.access.policy.model_copy(
        update={"agency_name": "  ", "authorized_roles": ("", " ")}
    )
    blank = settings.model_copy(
        update={"access": settings.access.model_copy(update={"policy": given})}
    )
    assert any("agency_name" in p for p in missing_parts(blank))
    assert any("authorized_roles" in p for p in missing_parts(blank))
    assert "People authorized to use or access the data: NOT STATED" in _flat(render_policy(blank))


def test_an_unknown_policy_key_stops_the_configuration_with_its_name(tmp_path: Path) -> None:
    from hotlist.config import load_settings

    config = tmp_path / "hotlist.toml"
    config.write_text("[access.policy]\ncustodian = 'Chief'\n")
    with pytest.raises(ConfigError, match=r"access\.policy\.custodian"):
        load_settings(config, environ={})


def test_the_cadence_the_policy_states_is_the_one_prefect_deploys() -> None:
    deployed = {
        d["name"]: tuple(
            s["cron"] if "cron" in s else f"interval {s['interval']}"
            for s in d.get("schedules", [])
        )
        for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }
    assert {s.deployment: s.crons for s in SCHEDULES} == deployed


def test_hotlist_serve_publishes_the_built_policy_without_a_key_or_a_log_record(
    operator_settings: Settings,
) -> None:
    with running_api(operator_settings) as url:
        response = httpx.get(f"{url}/privacy-policy", timeout=30)
    assert response.status_code == 200
    assert response.text == render_policy(operator_settings)
    assert list(audit.records(operator_settings.data_dir)) == []


def test_the_operators_own_policy_file_replaces_the_built_one(
    operator_settings: Settings, tmp_path: Path
) -> None:
    own = tmp_path / "our policy's text.txt"
    own.write_text("Our own ALPR usage and privacy policy.\n")
    settings = operator_settings.model_copy(
        update={"access": operator_settings.access.model_copy(update={"privacy_policy": own})}
    )
    with running_api(settings) as url:
        assert httpx.get(f"{url}/privacy-policy", timeout=30).text == own.read_text()


def test_a_configured_policy_file_that_is_missing_stops_the_server_with_the_path(
    operator_settings: Settings, tmp_path: Path
) -> None:
    gone = tmp_path / "nowhere.txt"
    settings = operator_settings.model_copy(
        update={"access": operator_settings.access.model_copy(update={"privacy_policy": gone})}
    )
    with pytest.raises(ConfigError, match=r"nowhere\.txt"):
        create_app(settings)


def test_hotlist_serve_warns_at_start_about_each_part_not_stated(
    settings: Settings, tmp_path: Path
) -> None:
    settings.data_dir.mkdir(mode=0o700)  # serve reads an existing data_dir; it never makes one
    with server_process(tmp_path / "hotlist.toml", tmp_path) as server:
        assert httpx.get(f"http://127.0.0.1:{server.port}/privacy-policy").status_code == 200
        started = server.stderr.read_text()
    for key in ("agency_name", "custodian_title", "authorized_roles", "training", "contact"):
        assert "does not state" in started and f"[access.policy] {key}" in started
