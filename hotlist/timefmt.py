"""The one way reports write times and durations: ISO 8601 in UTC, seconds to 0.1 s."""

from __future__ import annotations

import datetime as dt

import polars as pl

#: strftime pattern of every timestamp a report writes (HTML, CSV and JSON alike).
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime(ISO_UTC)


def iso_expr(column: str) -> pl.Expr:
    """A UTC datetime column as ISO 8601 text (null stays null)."""
    return pl.col(column).dt.convert_time_zone("UTC").dt.strftime(ISO_UTC).alias(column)


def duration(seconds: float | None) -> str:
    """``3.8 s``, ``4.2 min``, ``26.0 h``: never rounded to whole seconds."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"
