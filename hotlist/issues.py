"""A line's issues: ``(line_no, field, rule, severity)`` rows, from the pandera contracts
and from the parser's own rules. They name file, line, field and rule, never a value:
values are record content."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from hotlist.columns import ISSUE_SCHEMA

_CHECK_RULES = (
    ("str_matches", "format"),
    ("str_length", "length"),
    ("isin", "unknown_code"),
    ("not_nullable", "missing"),
)


def _rule(column: str, check: str) -> tuple[str, str]:
    """``(field, rule)`` for a pandera failure: ``plate_raw`` + ``str_matches`` -> plate.format."""
    field_name = column.removesuffix("_raw")
    if field_name == "record_date" and check == "not_nullable":
        return field_name, "record_date.invalid"
    for prefix, rule in _CHECK_RULES:
        if check.startswith(prefix):
            return field_name, f"{field_name}.{rule}"
    return field_name, f"{field_name}.{check.split('(')[0]}"


def contract_failures(
    model: type[pa.DataFrameModel], frame: pl.DataFrame, severity: str
) -> pl.DataFrame:
    """Run a contract; return ``(line_no, field, rule, severity)`` per failure.

    The failure values pandera reports are record content: they are dropped here.
    """
    try:
        model.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases.filter(pl.col("index").is_not_null())
        if cases.height == 0:
            raise RuntimeError(f"contract {model.__name__} failed at schema level") from None
        line_nos = frame["line_no"]
        named = [_rule(c, k) for c, k in zip(cases["column"], cases["check"], strict=True)]
        return pl.DataFrame(
            {
                "line_no": line_nos.gather(cases["index"].cast(pl.Int64)),
                "field": [f for f, _ in named],
                "rule": [r for _, r in named],
                "severity": [severity] * cases.height,
            },
            schema=ISSUE_SCHEMA,
        )
    return pl.DataFrame(schema=ISSUE_SCHEMA)


def issue(frame: pl.DataFrame, fld: str, rule: str, severity: str) -> pl.DataFrame:
    """One issue ``fld``/``rule`` of ``severity`` for each line of ``frame``."""
    return frame.select(
        pl.col("line_no"),
        pl.lit(fld).alias("field"),
        pl.lit(rule).alias("rule"),
        pl.lit(severity).alias("severity"),
    )


def duplicate_issues(dupes: pl.DataFrame) -> pl.DataFrame:
    return issue(dupes, "identity", "identity.duplicate", "warning")
