"""A layout's fields made into normalized rows: blanks to null, codes, plates, states and
years normalized, the raw value kept beside each one a contract checks."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from hotlist import normalize as norm
from hotlist.codes import hit_type_lists
from hotlist.layout import FIELD_NAMES, Layout

_CODE_FIELDS = ("plate_type", "make", "style", "colour")
#: Fields a layout may leave out; a blank one is null.
OPTIONAL_FIELDS = tuple(f for f in FIELD_NAMES if f not in ("plate", "state", "record_date"))


def _blank_to_null(name: str) -> pl.Expr:
    return pl.when(pl.col(name) == "").then(None).otherwise(pl.col(name)).alias(name)


def normalized(
    frame: pl.DataFrame, layout: Layout, feed: str, feed_list: str | None
) -> pl.DataFrame:
    names = set(layout.field_names)
    frame = frame.with_columns(
        pl.lit(None, dtype=pl.String).alias(n) for n in OPTIONAL_FIELDS if n not in names
    )
    frame = frame.with_columns(_blank_to_null(n) for n in OPTIONAL_FIELDS)
    if layout.has_record_id:
        letters = hit_type_lists()
        list_expr = (
            pl.col("record_id")
            .str.slice(0, 1)
            .replace_strict(list(letters), list(letters.values()), default=None)
        )
    else:
        list_expr = pl.lit(feed_list)
    # Codes have few distinct values: normalize each distinct value once, then map.
    coded = {c: _by_distinct(frame[c], norm.code) for c in _CODE_FIELDS}
    ori_prefix = frame["ori"].str.slice(0, 2)
    return frame.select(
        pl.lit(feed).alias("feed"),
        list_expr.alias("list"),
        pl.col("record_id").str.to_uppercase(),
        pl.concat_str(_by_distinct(ori_prefix, norm.code), pl.col("ori").str.slice(2)).alias("ori"),
        pl.col("record_date").str.strptime(pl.Date, "%Y%m%d", strict=False).alias("record_date"),
        norm.plate(pl.col("plate")).alias("plate"),
        pl.col("plate").alias("plate_raw"),
        _by_distinct(frame["state"], norm.state).alias("state"),
        pl.col("state").alias("state_raw"),
        pl.col("county"),
        pl.col("plate_year")
        .str.to_integer(strict=False)
        .cast(pl.Int16, strict=False)
        .alias("plate_year"),
        pl.col("plate_year").alias("plate_year_raw"),
        *(coded[c].alias(c) for c in _CODE_FIELDS if c != "colour"),
        pl.col("vehicle_year")
        .str.to_integer(strict=False)
        .cast(pl.Int16, strict=False)
        .alias("vehicle_year"),
        pl.col("vehicle_year").alias("vehicle_year_raw"),
        pl.col("model").str.to_uppercase(),
        coded["colour"].alias("colour"),
        pl.col("line_no"),
        pl.col("_shape_ok"),
    )


def _by_distinct(values: pl.Series, rule: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """``rule`` applied to each distinct value once, then mapped onto every row."""
    distinct = values.unique().drop_nulls()
    mapped = pl.select(rule(pl.lit(distinct))).to_series()
    return pl.lit(values).replace_strict(distinct, mapped, default=None)
