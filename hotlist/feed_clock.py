"""The source's clock: recovering from an extract time in the future that was applied.

A file is applied only when its extract time is newer than every extract time its feed
has applied (else it is refused as a replay). One file dated in the future (a bad
upstream clock, a typo in a header: 2099-01-01) would then make every real file after it
a "replay", so removals would stop for good. Refusing such files when they arrive is the
parser's job; this module is the way out when one was applied already: an operator sets
the future extract times of a feed aside, by name and with a reason. The version's
content stays; only its extract time stops counting (for the replay check and for
freshness), and the original time, who and why are kept in the feed's event log.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from hotlist.store import control as ctl
from hotlist.store.lock import writer_lock
from hotlist.store.state import write_state
from hotlist.wholefile import CLOCK_TOLERANCE

log = logging.getLogger("hotlist.feed_clock")

#: How far past this machine's clock an extract time may be and still count as "now": the
#: same tolerance the parser refuses a future file by, so what it would refuse is set aside.
FUTURE_TOLERANCE = CLOCK_TOLERANCE
RESET_VERDICT = "clock-reset"


class ClockError(Exception):
    """Nothing to set aside, or the request is incomplete; the message says which."""


@dataclass(frozen=True)
class SetAside:
    """One applied version whose extract time no longer counts."""

    feed: str
    version: int
    name: str
    extract_time: dt.datetime


def future_limit(now: dt.datetime) -> dt.datetime:
    """Extract times after this are in the future."""
    return now + FUTURE_TOLERANCE


def set_aside_future_extract_times(
    data_dir: Path,
    feed: str,
    requested_by: str,
    reason: str,
    now: dt.datetime | None = None,
) -> list[SetAside]:
    """Set aside every applied extract time of ``feed`` later than now (+ tolerance).

    Takes the writer lock; records one ``clock-reset`` event per version (the original
    time, who, why) and rewrites state.json. Raises :class:`ClockError` when there is
    nothing to set aside, naming the feed's latest extract time.
    """
    if not requested_by.strip() or not reason.strip():
        raise ClockError("say who asks (--requested-by) and why (--reason): both are logged")
    if not (requested_by + reason).isprintable():
        raise ClockError("--requested-by and --reason must be one printable line each")
    now = now or dt.datetime.now(dt.UTC)
    limit = future_limit(now)
    with writer_lock(data_dir, wait_s=600):
        con = ctl.connect(data_dir)
        try:
            rows = con.execute(
                """
                SELECT v.version, v.extract_time,
                       (SELECT max(e.name) FROM file_events e
                        WHERE e.feed = v.feed AND e.version = v.version) AS name
                FROM versions v
                WHERE v.feed = ? AND v.kind = 'ingest' AND v.extract_time > ?
                ORDER BY v.version
                """,
                [feed, limit],
            ).fetchall()
            if not rows:
                latest = ctl.last_extract_time(con, feed)
                shown = "none" if latest is None else latest.isoformat()
                raise ClockError(
                    f"feed {feed!r} has no applied extract time later than"
                    f" {limit.isoformat()} (its latest: {shown}); nothing was changed"
                )
            done = [SetAside(feed, int(v), str(name or "-"), t) for v, t, name in rows]
            con.begin()
            for item in done:
                con.execute(
                    "UPDATE versions SET extract_time = NULL WHERE feed = ? AND version = ?",
                    [feed, item.version],
                )
                ctl.record_event(
                    con,
                    ctl.FileEvent(
                        feed,
                        item.name,
                        RESET_VERDICT,
                        extract_time=item.extract_time,
                        version=item.version,
                        rule="future-extract-time",
                        message=(
                            f"extract time {item.extract_time.isoformat()} of version"
                            f" {item.version} set aside by {requested_by}: {reason}"
                        ),
                    ),
                    now,
                )
            con.commit()
            write_state(con, data_dir)
        finally:
            con.close()
    for item in done:
        log.warning(
            "%s: extract time %s of version %d (%s) set aside by %s: %s",
            feed, item.extract_time.isoformat(), item.version, item.name, requested_by, reason,
        )  # fmt: skip
    return done
