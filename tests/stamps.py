"""Header times for test extracts, relative to now, as upstream writes them (Pacific time)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

UPSTREAM_ZONE = ZoneInfo("America/Los_Angeles")


def stamp(hours_ago: float) -> str:
    """``CCYYMMDDHHMM``, ``hours_ago`` hours before now."""
    now = dt.datetime.now(UPSTREAM_ZONE)
    return (now - dt.timedelta(hours=hours_ago)).strftime("%Y%m%d%H%M")
