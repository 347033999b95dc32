"""Retention: whole monthly segments older than the configured span are deleted.

CJIS asks that the access log be kept at least a year; the default is two. Before a
segment is deleted its last record is anchored (kind ``expired``) so ``audit verify``
knows where the surviving chain must start, and a deletion cannot be passed off as an
expiry without the key.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from hotlist.audit import anchors
from hotlist.audit.keys import load_key
from hotlist.audit.segments import (
    Head,
    append_lock,
    head_of,
    month_of,
    records_of,
    segment_paths,
)
from hotlist.audit.where import Where, database_url
from hotlist.audit.where import data_dir as data_dir_of

if TYPE_CHECKING:
    from hotlist.config import Settings

DEFAULT_MONTHS = 24
MINIMUM_MONTHS = 12


def retention_months(settings: Settings) -> int:
    """``[audit] retention_months`` from the configuration (default 24, at least 12: the
    configuration refuses less)."""
    return settings.audit.retention_months


def expire(where: Where, months: int, now: dt.datetime | None = None) -> list[str]:
    """Delete what lies wholly in the months more than ``months`` before ``now``'s: the
    file log's segments (never the newest), or in PostgreSQL the records (never the
    newest). Returns what was deleted (segment names, or the range of records)."""
    if months < MINIMUM_MONTHS:
        raise ValueError(f"retention of {months} months is under the minimum {MINIMUM_MONTHS}")
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    index = now.year * 12 + now.month - 1 - months
    keep_from = (index // 12, index % 12 + 1)
    data_dir = data_dir_of(where)
    url = database_url(where)
    if url is not None:
        from hotlist.audit import pg

        return pg.expire(url, data_dir, dt.datetime(*keep_from, 1, tzinfo=dt.UTC))
    deleted: list[str] = []
    key = load_key(data_dir)
    with append_lock(data_dir):
        paths = segment_paths(data_dir)
        for i, path in enumerate(paths[:-1]):  # never the newest
            head = head_of(paths[: i + 1])
            if _month(path, head) >= keep_from:
                break
            anchors.record(data_dir, key, path.name, head.seq, head.hash, "expired", "retention")
            path.unlink()
            torn = path.with_name(path.name + ".torn")
            torn.unlink(missing_ok=True)
            deleted.append(path.name)
    return deleted


def _month(path: Path, head: Head) -> tuple[int, int]:
    """A segment's month; for the legacy log, the month of its last record."""
    month = month_of(path.name)
    if month is not None:
        return month
    for entry in records_of(path):
        if entry["seq"] == head.seq:
            at = dt.datetime.fromisoformat(entry["time"]).astimezone(dt.UTC)
            return (at.year, at.month)
    return (0, 0)
