"""Freshness and health of each feed, from state.json (never opens the control database)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hotlist.config import Settings
from hotlist.store.state import read_state


@dataclass(frozen=True)
class FeedStatus:
    source: str
    feed: str
    version: int | None
    entries: int
    quarantined: int
    last_file: str | None
    applied_at: dt.datetime | None
    age_hours: float | None
    stale: bool
    freshness_hours: float
    last_event: str | None
    last_error: str | None = None


def feed_statuses(settings: Settings, now: dt.datetime | None = None) -> list[FeedStatus]:
    """One status per configured feed; a feed never applied, or too long ago, is stale."""
    now = now or dt.datetime.now(dt.UTC)
    state = read_state(settings.data_dir)["feeds"]
    out: list[FeedStatus] = []
    for source_name, source in settings.sources.items():
        limit = source.guards.freshness_hours
        for feed in source.files:
            info = state.get(feed, {})
            applied = (
                dt.datetime.fromisoformat(info["applied_at"]) if info.get("applied_at") else None
            )
            age = (now - applied).total_seconds() / 3600 if applied else None
            event = info.get("last_event")
            out.append(
                FeedStatus(
                    source=source_name,
                    feed=feed,
                    version=info.get("version"),
                    entries=int(info.get("entries", 0)),
                    quarantined=int(info.get("quarantined", 0)),
                    last_file=(info.get("last_good_file") or {}).get("name"),
                    applied_at=applied,
                    age_hours=age,
                    stale=age is None or age > limit,
                    freshness_hours=limit,
                    last_event=None
                    if event is None
                    else f"{event['verdict']}"
                    + (f" [{event['rule']}]" if event.get("rule") else ""),
                    last_error=event.get("message")
                    if event is not None and event["verdict"] in ("rejected", "fetch-failed")
                    else None,
                )
            )
    return out
