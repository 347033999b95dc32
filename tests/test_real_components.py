"""The CI rule for real-component tests, checked on a throw-away test file run by pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = """
import pytest

@pytest.fixture
def sshd():
    pytest.skip("no /usr/sbin/sshd here")

@pytest.mark.real_component
def test_marked():
    pytest.skip("no chromium here")

def test_by_fixture(sshd):
    pass

def test_plain():
    pytest.skip("not a real-component test")
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.real_components", "-rA", "-q",
         "-p", "no:cacheprovider", str(tmp_path / "test_sample.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_under_ci_a_skipped_real_component_test_fails_with_its_reason(tmp_path: Path) -> None:
    done = _run(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 skipped, 1 error" in done.stdout  # the fixture's skip: an error
    assert "real-component test skipped under CI=true: no chromium here" in done.stdout
    assert "real-component test skipped under CI=true: no /usr/sbin/sshd here" in done.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_it_skips_with_its_reason(tmp_path: Path, ci: str | None) -> None:
    done = _run(tmp_path, ci)
    assert done.returncode == 0, done.stdout
    assert "3 skipped" in done.stdout
