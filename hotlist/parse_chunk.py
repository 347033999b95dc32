"""One chunk of a file's record lines parsed: hit-type judgement (SB 54: ``N`` records are
dropped before anything is kept), fields by the layout, normalization, the pandera
contracts and the parser's own rules, then entries / quarantine / issues."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from contracts.models import ClewRow, CodeAdvisories, NcicRow
from hotlist import normalize as norm
from hotlist.codes import hit_type_lists
from hotlist.columns import ENTRY_COLUMNS, ISSUE_SCHEMA
from hotlist.issues import contract_failures, issue
from hotlist.layout import Layout
from hotlist.lines import fields
from hotlist.quarantine import (
    CARRIED,
    QUARANTINE_SCHEMA,
    UNKNOWN_HIT_TYPE,
    carry_key,
    quarantine_line_hash,
)
from hotlist.rows import normalized

#: How far a record date may lie after today (UTC): the local date of an agency west of
#: Greenwich can be a day behind, one east of it a day ahead.
FUTURE_DATE_TOLERANCE = dt.timedelta(days=1)


@dataclass(frozen=True)
class ParsedFile:
    """What a file holds, sorted into what may load, what is quarantined, and why."""

    name: str
    extract_time: dt.datetime
    record_lines: int
    entries: pl.DataFrame
    quarantine: pl.DataFrame
    issues: pl.DataFrame
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def row_errors(self) -> int:
        return self.quarantine.height

    @property
    def warnings(self) -> int:
        return int((self.issues["severity"] == "warning").sum())


def sum_excluded(counts: list[dict[str, int]]) -> dict[str, int]:
    excluded: dict[str, int] = {}
    for chunk in counts:
        for key, count in chunk.items():
            excluded[key] = excluded.get(key, 0) + count
    return excluded


def parse_chunk(
    body: pl.DataFrame,
    layout: Layout,
    feed: str,
    feed_list: str | None,
    hit_types: frozenset[str],
    hash_key: bytes | None = None,
    now: dt.datetime | None = None,
) -> ParsedFile:
    """Parse record lines (``line_no, text``) into a :class:`ParsedFile` without a name or
    time: chunks of one file are independent."""
    record_lines = body.height
    excluded: dict[str, int] = {}
    unknown = pl.DataFrame(schema=QUARANTINE_SCHEMA)
    if layout.has_record_id:
        # SB 54: a line is parsed only when it is positively of an allowed hit type, judged
        # on the line as a person reads it (NFKC, no byte order mark, quotes or white space
        # before the letter). The others are dropped before anything is done with them: an
        # immigration violator record or a hit type not configured is counted, and a line
        # of no known hit type is quarantined as its number, rule and keyed hash alone.
        letters = norm.hit_type_letters(_hit_type_text(body, layout))
        allowed = letters.is_in(sorted(hit_types - {"N"}))
        immigration = letters == "N"
        not_configured = letters.is_in(sorted(set(hit_type_lists()) - hit_types - {"N"}))
        excluded["immigration_violator_sb54"] = int(immigration.sum())
        excluded["hit_type_not_configured"] = int(not_configured.sum())
        if not allowed.all():
            dropped = ~(allowed | immigration | not_configured)
            unknown = body.filter(dropped).select(
                pl.col("line_no"),
                pl.lit(None, pl.String).alias("raw_line"),
                pl.lit(UNKNOWN_HIT_TYPE).alias("rules"),
                *(pl.lit(None, pl.String).alias(f"carry_{c}") for c in CARRIED),
                quarantine_line_hash(hash_key),
            )
            body = body.filter(allowed)
    rows = normalized(fields(body, layout), layout, feed, feed_list)
    # A placeholder plate (NONE, UNK, 000...) written in plate characters is not a hit.
    # The pattern is tested only on the few rows whose plate is a placeholder.
    placeholder = rows["plate"].is_in(sorted(norm.NOT_A_HIT_PLATES)).fill_null(False)
    excluded["plate_not_a_hit"] = 0
    if placeholder.any():
        written = rows["plate_raw"].str.contains(norm.RAW_PLATE_PATTERN).fill_null(False)
        not_a_hit = placeholder & written
        excluded["plate_not_a_hit"] = int(not_a_hit.sum())
        rows = rows.filter(~not_a_hit)
    row_model = NcicRow if layout.has_record_id else ClewRow
    errors = contract_failures(row_model, rows, "error")
    if layout.format != "fixed":  # a fixed-width line always has every field
        shape = issue(rows.filter(~pl.col("_shape_ok")), "line", "line.field_count", "error")
        errors = pl.concat([shape, errors])
    warnings = pl.concat(
        [
            contract_failures(CodeAdvisories, rows, "warning"),
            _too_long(body, layout),
            _future_dates(rows, now or dt.datetime.now(dt.UTC)),
        ]
    )
    if errors.height and warnings.height:  # a value that is no code is not an unknown one
        warnings = warnings.join(errors, on=["line_no", "field"], how="anti")
    if unknown.height:
        errors = pl.concat([issue(unknown, "record_id", UNKNOWN_HIT_TYPE, "error"), errors])
    if errors.height:
        bad = pl.col("line_no").is_in(errors["line_no"].unique().implode())
        quarantined, entries = rows.filter(bad), rows.filter(~bad)
    else:  # the common case: no row copied
        quarantined, entries = rows.clear(), rows
    quarantine = (
        quarantined.join(
            errors.group_by("line_no").agg(
                pl.col("rule").unique().sort().str.join(",").alias("rules")
            ),
            on="line_no",
        )
        .join(body.select("line_no", pl.col("text").alias("raw_line")), on="line_no")
        .select(
            "line_no",
            "raw_line",
            "rules",
            *carry_key(layout),
            quarantine_line_hash(hash_key, pl.col("raw_line")),
        )
    )
    if unknown.height:
        quarantine = pl.concat([quarantine, unknown])
    quarantine = quarantine.cast(QUARANTINE_SCHEMA).sort("line_no")
    return ParsedFile(
        name="",
        extract_time=dt.datetime.min,
        record_lines=record_lines,
        entries=entries.select(ENTRY_COLUMNS),
        quarantine=quarantine,
        issues=pl.concat([errors, warnings]),
        excluded=excluded,
    )


def _too_long(body: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """``line.too_long`` warnings: a fixed-width line with text past its last field."""
    ends = [f.end for f in layout.fields]
    if layout.format != "fixed" or None in ends:
        return pl.DataFrame(schema=ISSUE_SCHEMA)
    last = max(e for e in ends if e is not None)
    longer = body.filter(pl.col("text").str.len_bytes() > last)  # few: cheap to find
    tail = pl.col("text").str.slice(last).str.strip_chars(norm.BLANKS)
    return issue(longer.filter(tail != ""), "line", "line.too_long", "warning")


def _future_dates(rows: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """``record_date.future`` warnings: a record dated after tomorrow (UTC)."""
    latest = (now.astimezone(dt.UTC) + FUTURE_DATE_TOLERANCE).date()
    return issue(
        rows.filter(pl.col("record_date") > latest), "record_date", "record_date.future", "warning"
    )


def _hit_type_text(body: pl.DataFrame, layout: Layout) -> pl.Series:
    """The text of each line from where its record id starts: the line itself in the
    shipped layouts. Not cut at the field's end: a shifted line is judged all the same."""
    [record_id] = (f for f in layout.fields if f.name == "record_id")
    text = pl.col("text")
    index = layout.field_names.index("record_id")
    if (layout.format == "fixed" and record_id.start == 0) or (layout.format, index) == ("csv", 0):
        return body["text"]
    if layout.format == "fixed":
        return body.select(text.str.slice(record_id.start)).to_series()
    rest = text.str.split(layout.separator).list.slice(index).list.join(layout.separator)
    return body.select(rest).to_series()
