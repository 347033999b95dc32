"""Usage audits for reviewers: who searched hotlist data, for what, with what outcome.

Built from the access log alone (the system's own recovery records left out). What is
counted: accesses by organization, user, purpose and outcome; refusals by reason;
accesses per day; users whose volume on a day is unusual for them; after-hours use.
The queried plates are not shown: the report is about use, and counts need no content.

- *Unusual volume*: a day on which a user made at least ``UNUSUAL_MIN`` accesses and at
  least ``UNUSUAL_FACTOR`` times that user's median over their active days in the period
  (a user needs ``BASELINE_DAYS`` active days for a baseline).
- *After hours*: outside ``WORK_HOURS`` on weekdays, or any time on a weekend, in the
  agency's time zone (``TIME_ZONE``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from hotlist.audit.log import records
from hotlist.audit.where import Where
from hotlist.timefmt import iso

TIME_ZONE = "America/Los_Angeles"
WORK_HOURS = (7, 19)  # 07:00 to 18:59 local
UNUSUAL_FACTOR = 3.0
UNUSUAL_MIN = 10
BASELINE_DAYS = 3

_SCHEMA = {
    "time": pl.String, "user": pl.String, "organization": pl.String, "purpose": pl.String,
    "outcome": pl.String, "channel": pl.String,
}  # fmt: skip


@dataclass(frozen=True)
class UsageReport:
    summary: dict[str, Any]
    events: pl.DataFrame  # at, user, organization, purpose, result, reason, channel
    by_organization: pl.DataFrame
    by_user: pl.DataFrame
    by_purpose: pl.DataFrame
    by_outcome: pl.DataFrame
    refusals: pl.DataFrame
    per_day: pl.DataFrame
    unusual: pl.DataFrame
    after_hours: pl.DataFrame


def _events(where: Where, since: dt.datetime | None) -> pl.DataFrame:
    rows = [
        {k: str(r.get(k, "")) for k in _SCHEMA}
        for r in records(where, since)
        if r.get("channel") != "system"
    ]
    frame = pl.DataFrame(rows, schema=_SCHEMA)
    return frame.select(
        pl.col("time").str.to_datetime(time_zone="UTC", time_unit="us").alias("at"),
        "user",
        "organization",
        "purpose",
        pl.when(pl.col("outcome").str.starts_with("granted"))
        .then(pl.lit("granted"))
        .when(pl.col("outcome").str.starts_with("refused"))
        .then(pl.lit("refused"))
        .otherwise(pl.lit("other"))
        .alias("result"),
        pl.col("outcome").str.strip_prefix("refused:").str.strip_chars().alias("reason"),
        "channel",
    )


def _counts(events: pl.DataFrame, *keys: str) -> pl.DataFrame:
    return (
        events.group_by(*keys)
        .agg(
            pl.len().alias("accesses"),
            (pl.col("result") == "granted").sum().alias("granted"),
            (pl.col("result") == "refused").sum().alias("refused"),
        )
        .sort(["accesses", *keys], descending=[True, *([False] * len(keys))])
    )


def usage_report(
    where: Where, since: dt.datetime | None = None, now: dt.datetime | None = None,
    time_zone: str = TIME_ZONE,
) -> UsageReport:  # fmt: skip
    now = now or dt.datetime.now(dt.UTC)
    events = _events(where, since)
    local = pl.col("at").dt.convert_time_zone(time_zone)
    events = events.with_columns(
        local.dt.date().alias("local_day"),
        (
            (local.dt.weekday() >= 6)
            | (local.dt.hour() < WORK_HOURS[0])
            | (local.dt.hour() >= WORK_HOURS[1])
        ).alias("after_hours"),
    )
    refusals = (
        events.filter(pl.col("result") == "refused")
        .group_by("reason")
        .agg(pl.len().alias("refusals"), pl.col("user").n_unique().alias("users"))
        .sort(["refusals", "reason"], descending=[True, False])
    )
    per_day = events.group_by(pl.col("at").dt.date().alias("day")).agg(
        pl.len().alias("accesses"), (pl.col("result") == "refused").sum().alias("refused")
    )
    daily = events.group_by("user", "organization", "local_day").agg(pl.len().alias("n"))
    unusual = (
        daily.with_columns(
            pl.col("n").median().over("user", "organization").alias("usual"),
            pl.len().over("user", "organization").alias("active_days"),
        )
        .filter(
            (pl.col("active_days") >= BASELINE_DAYS)
            & (pl.col("n") >= UNUSUAL_MIN)
            & (pl.col("n") >= UNUSUAL_FACTOR * pl.col("usual"))
        )
        .select("user", "organization", pl.col("local_day").alias("day"),
                pl.col("n").alias("accesses"), pl.col("usual").alias("usual_per_day"))
        .sort("day", "user")
    )  # fmt: skip
    after = _counts(events.filter(pl.col("after_hours")), "user", "organization")
    summary = {
        "generated_at": iso(now),
        "since": iso(since) if since else None,
        "first_access": iso(events["at"].min()) if events.height else None,  # type: ignore[arg-type]
        "last_access": iso(events["at"].max()) if events.height else None,  # type: ignore[arg-type]
        "accesses": events.height,
        "granted": int((events["result"] == "granted").sum()),
        "refused": int((events["result"] == "refused").sum()),
        "users": events.select("user", "organization").n_unique() if events.height else 0,
        "organizations": events["organization"].n_unique(),
        "after_hours_accesses": int(events["after_hours"].sum()),
        "unusual_user_days": unusual.height,
        "time_zone": time_zone,
        "work_hours": f"{WORK_HOURS[0]:02d}:00-{WORK_HOURS[1]:02d}:00 weekdays",
        "unusual_rule": (
            f"a day with at least {UNUSUAL_MIN} accesses and at least {UNUSUAL_FACTOR:g} times"
            f" the user's median over their active days (needs {BASELINE_DAYS} active days)"
        ),
    }
    return UsageReport(
        summary=summary,
        events=events,
        by_organization=_counts(events, "organization"),
        by_user=_counts(events, "user", "organization"),
        by_purpose=_counts(events, "purpose"),
        by_outcome=events.group_by("result").agg(pl.len().alias("accesses")).sort("result"),
        refusals=refusals,
        per_day=per_day.sort("day"),
        unusual=unusual,
        after_hours=after,
    )
