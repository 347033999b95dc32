"""Counts over time as an inline SVG bar chart with axes, readable for a day or a year.

The bucket follows the span shown: hours up to two days (a single day is drawn as its 24
hours), days up to three months, weeks up to two years, months beyond. Empty buckets are
drawn as gaps on a continuous time axis, so one busy day in a quiet year looks like that.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from dataclasses import dataclass

import polars as pl

from hotlist.timefmt import iso

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 64, 28, 64
COLORS = ("#3b6ea8", "#c0392b", "#7f8c8d", "#27ae60")
DOT = "#d35400"


@dataclass(frozen=True)
class Bucket:
    every: str  # polars duration
    label: str  # strftime of a tick
    name: str  # for the axis title


def bucket_for(start: dt.datetime, end: dt.datetime) -> Bucket:
    span = end - start
    if span <= dt.timedelta(days=2):
        return Bucket("1h", "%H:00", "hour")
    if span <= dt.timedelta(days=92):
        return Bucket("1d", "%m-%d", "day")
    if span <= dt.timedelta(days=731):
        return Bucket("1w", "%Y-%m-%d", "week (from Monday)")
    return Bucket("1mo", "%Y-%m", "month")


def nice_ticks(top: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values from 0 to at least ``top`` (whole numbers only for counts)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = max(top / count, 1.0) if whole else top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if whole:
        step = math.ceil(step)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.1f}"


def time_chart(
    events: pl.DataFrame,
    title: str,
    y_label: str,
    groups: tuple[str, ...] = (),
    dot_label: str | None = None,
) -> str:
    """Bars: events per bucket (stacked by ``group`` in the order of ``groups`` when the
    frame has that column). Dots (right axis): the maximum of ``value`` per bucket when
    ``dot_label`` is given. ``events`` has a UTC datetime column ``at``."""
    if events.height == 0:
        return f"<p>{html.escape(title)}: nothing in this period.</p>"
    first, last = events["at"].min(), events["at"].max()
    assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime)
    bucket = bucket_for(first, last)
    if bucket.every == "1h":  # whole days, so one day reads as a day
        first = first.replace(hour=0, minute=0, second=0, microsecond=0)
        last = last.replace(hour=23, minute=0, second=0, microsecond=0)
    frame = events.with_columns(pl.col("at").dt.truncate(bucket.every).alias("bucket"))
    axis = pl.datetime_range(
        pl.lit(first).dt.truncate(bucket.every), pl.lit(last).dt.truncate(bucket.every),
        bucket.every, eager=True, time_zone="UTC",
    ).alias("bucket")  # fmt: skip
    names = groups or ("all",)
    if "group" not in frame.columns:
        frame = frame.with_columns(pl.lit(names[0]).alias("group"))
    counts = frame.group_by("bucket", "group").len().pivot(on="group", index="bucket", values="len")
    table = pl.DataFrame(axis).join(counts, on="bucket", how="left")
    for name in names:
        if name not in table.columns:
            table = table.with_columns(pl.lit(0).alias(name))
    table = table.with_columns(pl.col(list(names)).fill_null(0))
    if dot_label is not None:
        dots = frame.group_by("bucket").agg(pl.col("value").max().alias("dot"))
        table = table.join(dots, on="bucket", how="left")
    table = table.sort("bucket")
    return _svg(table, bucket, names, title, y_label, dot_label)


def _svg(
    table: pl.DataFrame, bucket: Bucket, names: tuple[str, ...], title: str, y_label: str,
    dot_label: str | None,
) -> str:  # fmt: skip
    n = table.height
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    totals = table.select(pl.sum_horizontal(list(names))).to_series()
    ticks = nice_ticks(float(totals.max() or 0), whole=True)  # type: ignore[arg-type]
    top = ticks[-1]
    step = plot_w / n
    bar = min(max(step * 0.8, 1.0), 48.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}"'
        f' height="{HEIGHT}" role="img" aria-label="{html.escape(title)}" class="chart">',
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    for t in ticks:  # left axis: counts, with grid lines
        y = base - plot_h * t / top
        out.append(
            f'<line shape-rendering="crispEdges" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{_fmt(t)}</text>'
        )
    out.append(
        f'<text transform="translate(14 {TOP + plot_h / 2:.0f}) rotate(-90)" font-size="11"'
        f' text-anchor="middle">{html.escape(y_label)}</text>'
    )
    for i, row in enumerate(table.iter_rows(named=True)):
        x = LEFT + i * step + (step - bar) / 2
        y = float(base)
        label = iso(row["bucket"]) if bucket.every == "1h" else f"{row['bucket']:%Y-%m-%d}"
        for g, name in enumerate(names):
            h = plot_h * row[name] / top
            if h > 0:
                y -= h
                out.append(
                    f'<rect shape-rendering="crispEdges" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}"'
                    f' fill="{COLORS[g % len(COLORS)]}"><title>{label}: {row[name]}'
                    f" {html.escape(name)}</title></rect>"
                )
    if dot_label is not None:
        dot_ticks = nice_ticks(float(table["dot"].max() or 0))  # type: ignore[arg-type]
        dot_top = dot_ticks[-1]
        for t in dot_ticks:
            y = base - plot_h * t / dot_top
            out.append(
                f'<text x="{LEFT + plot_w + 6}" y="{y + 4:.1f}" font-size="11" fill="{DOT}">'
                f"{_fmt(t)}</text>"
            )
        out.append(
            f'<text transform="translate({WIDTH - 10} {TOP + plot_h / 2:.0f}) rotate(90)"'
            f' font-size="11" text-anchor="middle" fill="{DOT}">{html.escape(dot_label)}</text>'
            f'<line shape-rendering="crispEdges" x1="{LEFT + plot_w}" x2="{LEFT + plot_w}" y1="{TOP}" y2="{base}" stroke="{DOT}"/>'
        )
        for i, value in enumerate(table["dot"]):
            if value is not None:
                cx = LEFT + (i + 0.5) * step
                cy = base - plot_h * value / dot_top
                out.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{DOT}" stroke="#fff">'
                    f"<title>{value:,.1f}</title></circle>"
                )
    out.append(
        f'<line shape-rendering="crispEdges" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}" stroke="#333"/>'
        f'<line shape-rendering="crispEdges" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{base}" y2="{base}" stroke="#333"/>'
    )
    every = max(1, math.ceil(n / 8))
    for i, when in enumerate(table["bucket"]):
        if i % every == 0:
            x = LEFT + (i + 0.5) * step
            out.append(
                f'<line shape-rendering="crispEdges" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="#333"/>'
                f'<text x="{x:.1f}" y="{base + 17}" font-size="11" text-anchor="middle">'
                f"{when.strftime(bucket.label)}</text>"
            )
    first, last = table["bucket"][0], table["bucket"][-1]
    span = f"{first:%Y-%m-%d}" + (f" to {last:%Y-%m-%d}" if last.date() != first.date() else "")
    out.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{base + 36}" font-size="11" text-anchor="middle">'
        f"{html.escape(bucket.name)} (UTC), {span}</text>"
    )
    legend_x = LEFT
    for g, name in enumerate(names if len(names) > 1 else ()):
        out.append(
            f'<rect shape-rendering="crispEdges" x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10"'
            f' fill="{COLORS[g % len(COLORS)]}"/><text x="{legend_x + 14}" y="{HEIGHT - 5}"'
            f' font-size="11">{html.escape(name)}</text>'
        )
        legend_x += 24 + 7 * len(name)
    if dot_label is not None:
        out.append(
            f'<circle cx="{legend_x + 5}" cy="{HEIGHT - 9}" r="4" fill="{DOT}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT - 5}" font-size="11">'
            f"{html.escape(dot_label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
