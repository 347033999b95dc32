"""Under ``CI=true`` a real-component test that skips is a failure (pytest plugin).

A test is a real-component test when it is marked ``real_component`` or uses a fixture
that starts a real outside part (an OpenSSH sshd, a Prefect server, uvicorn, Chromium).
On a developer's machine without sshd such a test skips with its reason; in CI the same
skip would prove nothing, so the report is turned into a failure that names the reason (an error, when the skip
came from a fixture's set-up).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

MARKER = "real_component"
#: Fixtures that start a real outside part: a test using one is a real-component test.
REAL_FIXTURES = frozenset(
    {"sshd", "own_sshd", "remote_dir", "make_source", "prefect_api", "server", "deployed"}
    | {"api", "chromium", "browser", "postgres", "pg_url"}
)


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: needs a real outside part (sshd, a Prefect server, uvicorn, Chromium, PostgreSQL);"
        " under CI=true a skip is a failure",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(MARKER)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and running_in_ci()
        and item.get_closest_marker(MARKER) is not None
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        reason = str(reason).removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"real-component test skipped under CI=true: {reason}"
    return report
