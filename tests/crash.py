"""Runs of the library in a child process that a test kills with SIGKILL: at a named
crash point (:mod:`hotlist.faults`), or at a moment the test chooses.

The child loads the settings of a test's ``hotlist.toml`` as ``s``, then runs one
statement (``call``) with ``ingest_source``, ``purge`` and ``manual_purge`` imported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from hotlist.config import Settings
from hotlist.faults import ENV


def config_of(settings: Settings) -> Path:
    """The configuration file the test fixtures write beside ``data_dir``."""
    return settings.data_dir.parent / "hotlist.toml"


def start(settings: Settings, call: str, kill_at: str | None = None) -> subprocess.Popen[bytes]:
    """Start ``call`` in a child; it kills itself at the crash point ``kill_at``, if any."""
    code = (
        "from pathlib import Path; from hotlist.config import load_settings;"
        "from hotlist.ingest import ingest_source;"
        "from hotlist.purge import manual_purge, purge;"
        f"s = load_settings(Path({str(config_of(settings))!r}), {{}}); {call}"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if kill_at is not None:
        env[ENV] = kill_at
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path.cwd())


def killed_at(settings: Settings, point: str, call: str, timeout: float = 120) -> None:
    """Run ``call`` in a child until it reaches the crash point ``point`` and dies there;
    fail if it ends any other way (it never reached the point, or it raised)."""
    proc = start(settings, call, kill_at=point)
    assert proc.wait(timeout=timeout) == -signal.SIGKILL, f"not killed at {point}"
