"""Named crash points, so tests can ``kill -9`` a writer at an exact step.

Set ``HOTLIST_FAULT_KILL_AT=<point>`` in a child process; when the writer reaches that
point it sends itself SIGKILL, exactly as an operator's ``kill -9`` or the OOM killer would.
"""

from __future__ import annotations

import os
import signal

ENV = "HOTLIST_FAULT_KILL_AT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
