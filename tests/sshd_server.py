"""A real OpenSSH server for tests: :mod:`hotlist.testing.sshd` plus skip-or-fail rules.

The sshd logic lives in ``hotlist.testing.sshd`` so that ``bench/`` can use it too; this
module re-exports it and adds what only tests need: when ``/usr/sbin/sshd`` (or
``ssh-keygen``) is missing, a test is skipped with the reason, except under CI (env ``CI``
set), where it fails: an SFTP suite that silently skips in CI proves nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from hotlist.testing.sshd import (
    LOOPBACK,
    SSHD,
    SshdServer,
    SshdUnavailable,
    fingerprint_of_public_key,
    free_port,
    generate_ed25519_key,
    known_hosts_line,
    sshd_unavailable_reason,
    unprivileged_user,
)

__all__ = [
    "LOOPBACK",
    "SSHD",
    "SshdServer",
    "SshdUnavailable",
    "fingerprint_of_public_key",
    "free_port",
    "generate_ed25519_key",
    "known_hosts_line",
    "require_unprivileged_user",
    "skip_or_fail",
    "start_sshd",
    "unprivileged_user",
]


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it when running under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: SFTP tests must run, not skip)")
    pytest.skip(reason)


def start_sshd(*, sshd: Path = SSHD, parent: Path | None = None) -> SshdServer:
    """A started sshd; skips (or fails under CI) when this machine cannot run one."""
    reason = sshd_unavailable_reason(sshd)
    if reason is not None:
        skip_or_fail(reason)
    return SshdServer(sshd=sshd, parent=parent).start()


def require_unprivileged_user() -> str:
    """A login that file permissions apply to (``nobody`` when running as root)."""
    user = unprivileged_user()
    if user is None:
        skip_or_fail("no unprivileged account (nobody) to log in as")
    return user
