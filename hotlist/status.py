"""Freshness and health of each feed, from state.json (never opens the control database).

A feed is fresh when both clocks say so: the extract's own time (what upstream says its
data is as of; not when it was applied here, which a late or replayed file would make
look new) and the last successful fetch (the last file taken from upstream: applied, or
identical to an applied one). Either older than the source's ``guards.freshness_hours``, or never
known, makes the feed stale: ``hotlist status`` exits 3 and each ingest flow run that
leaves a feed stale emits a ``hotlist.feed.stale`` event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hotlist.config import Settings
from hotlist.store.state import read_state

#: Verdicts of a fetch that reached the upstream and took its file.
FETCHED_VERDICTS = frozenset({"applied", "duplicate"})


@dataclass(frozen=True)
class FeedStatus:
    source: str
    feed: str
    version: int | None
    entries: int
    quarantined: int
    last_file: str | None
    applied_at: dt.datetime | None
    #: Hours since the extract's own time (None: no extract time known).
    age_hours: float | None
    stale: bool
    freshness_hours: float
    last_event: str | None
    last_error: str | None = None
    #: The extract's own time and the last successful fetch, ISO 8601 (None: never).
    extract_time: str | None = None
    last_fetch_at: str | None = None
    fetch_age_hours: float | None = None
    #: Why the feed is stale, for people ("extract 240.0 h old > 12 h", ...).
    stale_because: tuple[str, ...] = ()


def _time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _hours(now: dt.datetime, then: dt.datetime | None) -> float | None:
    return None if then is None else (now - then).total_seconds() / 3600


def last_fetch(info: dict[str, Any]) -> dt.datetime | None:
    """The last file taken for a feed: its last event when that one took a file, else the
    last applied file. A fetch that finds the file taken last records nothing, so this can
    only be older than the last contact with upstream: the feed turns stale sooner, never
    later. It matters when an extract time runs ahead of this machine's clock (the
    extract's age alone would then keep the feed fresh)."""
    if info.get("last_fetch_at"):
        return _time(info["last_fetch_at"])
    event = info.get("last_event") or {}
    if event.get("verdict") in FETCHED_VERDICTS and event.get("at"):
        return _time(event["at"])
    return _time((info.get("last_good_file") or {}).get("at"))


def staleness(extract_age: float | None, fetch_age: float | None, limit: float) -> tuple[str, ...]:
    """Why a feed is stale (empty: it is fresh)."""
    reasons = []
    if extract_age is None:
        reasons.append("no extract time known")
    elif extract_age > limit:
        reasons.append(f"extract {extract_age:.1f} h old > {limit:g} h")
    if fetch_age is None:
        reasons.append("never fetched")
    elif fetch_age > limit:
        reasons.append(f"last successful fetch {fetch_age:.1f} h ago > {limit:g} h")
    return tuple(reasons)


def feed_statuses(
    settings: Settings, now: dt.datetime | None = None, source_name: str | None = None
) -> list[FeedStatus]:
    """One status per configured feed (of ``source_name``, or of every source)."""
    now = now or dt.datetime.now(dt.UTC)
    state = read_state(settings.data_dir)["feeds"]
    out: list[FeedStatus] = []
    for name, source in settings.sources.items():
        if source_name is not None and name != source_name:
            continue
        limit = source.guards.freshness_hours
        for feed in source.files:
            info = state.get(feed, {})
            extract_time = _time(info.get("extract_time"))
            fetched = last_fetch(info)
            extract_age, fetch_age = _hours(now, extract_time), _hours(now, fetched)
            reasons = staleness(extract_age, fetch_age, limit)
            event = info.get("last_event")
            out.append(
                FeedStatus(
                    source=name,
                    feed=feed,
                    version=info.get("version"),
                    entries=int(info.get("entries", 0)),
                    quarantined=int(info.get("quarantined", 0)),
                    last_file=(info.get("last_good_file") or {}).get("name"),
                    applied_at=_time(info.get("applied_at")),
                    age_hours=extract_age,
                    stale=bool(reasons),
                    freshness_hours=limit,
                    last_event=None
                    if event is None
                    else f"{event['verdict']}"
                    + (f" [{event['rule']}]" if event.get("rule") else ""),
                    last_error=event.get("message")
                    if event is not None and event["verdict"] in ("rejected", "fetch-failed")
                    else None,
                    extract_time=None if extract_time is None else extract_time.isoformat(),
                    last_fetch_at=None if fetched is None else fetched.isoformat(),
                    fetch_age_hours=fetch_age,
                    stale_because=reasons,
                )
            )
    return out
