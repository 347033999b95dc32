"""CSV injection: every CSV the project writes passes each text cell through :func:`cell`.

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``), and some importers treat a leading
tab or carriage return the same way (OWASP, "CSV Injection"). Such a cell is written with
one single quote in front, which every spreadsheet shows as text and never evaluates.

The rule, and why a reader's comparisons are unaffected:

- A text cell is *dangerous* when its first character that is not a single quote,
  whitespace, or an invisible control/format character (BOM, zero-width space) is one of
  ``= + - @`` after Unicode NFKC normalization (so the full-width equals sign U+FF1D counts), or is a
  tab or carriage return. Importers that trim spaces would otherwise turn ``" =cmd"``
  into a formula.
- A dangerous cell gets exactly one leading ``'``; every other cell is written as is.
- Plates, states, ORIs, NICs, codes, versions, hashes and ISO 8601 timestamps never start
  with any of those characters, so every value a reader joins or compares on is written
  unchanged. Only free text (a user name, a colour, a vehicle model, an outcome) can
  carry the quote.
- :func:`restore` undoes it exactly: ``restore(cell(x)) == x`` for every string ``x``
  (a value that itself starts with quotes before a trigger gets one more quote, so the
  mapping stays reversible).

Numbers are written by the CSV writer as numbers and are never touched: a negative
number is a value, not a formula, in every spreadsheet.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable, Mapping
from typing import IO, Any, TypeVar

import polars as pl

#: Leading characters a spreadsheet evaluates: ``= + - @`` and every character whose NFKC
#: form starts with one of them (full-width, small and super/subscript forms).
TRIGGERS = frozenset(
    "=+-@\u207a\u207c\u208a\u208c\u2a75\u2a76\ufb29\ufe62\ufe63\ufe66\ufe6b\uff0b\uff0d\uff1d\uff20"
)
#: Leading control characters some importers evaluate.
CONTROL_TRIGGERS = frozenset("\t\r")
QUOTE = "'"
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
#: Unicode categories passed over before the first visible character: controls, format
#: characters (BOM, zero-width space) and separators (spaces, line separators).
_SKIPPED = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
#: The same rule as :func:`dangerous`, for polars (Rust regex syntax).
_PATTERN = (
    r"^[\x27\p{Cc}\p{Cf}\p{Z}--[\t\r]]*[\t\r"
    + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(TRIGGERS))
    + "]"
)


def dangerous(value: str) -> bool:
    """Would a spreadsheet evaluate this text (ignoring quotes and invisible lead-ins)?"""
    for ch in value:
        if ch in CONTROL_TRIGGERS:
            return True
        if ch == QUOTE or unicodedata.category(ch) in _SKIPPED:
            continue
        return ch in TRIGGERS
    return False


def cell(value: str) -> str:
    """The text as it must be written to a CSV cell."""
    return QUOTE + value if dangerous(value) else value


def restore(value: str) -> str:
    """The original text of a cell written by :func:`cell`."""
    if value.startswith(QUOTE) and dangerous(value[1:]):
        return value[1:]
    return value


def row(values: Mapping[str, Any]) -> dict[str, Any]:
    """A row for :class:`csv.DictWriter` with every text value neutralized."""
    return {k: cell(v) if isinstance(v, str) else v for k, v in values.items()}


def write_rows(fh: IO[str], fieldnames: list[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write a header and ``rows`` (extra keys ignored) as CSV; returns the row count."""
    writer = csv.DictWriter(fh, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for values in rows:
        writer.writerow(row(values))
        count += 1
    return count


def frame(df: Frame) -> Frame:
    """The frame with every text column neutralized (numbers and dates untouched), for
    ``write_csv`` / ``sink_csv``. Column names are neutralized too."""
    schema = df.collect_schema()
    text = [name for name, dtype in schema.items() if dtype == pl.String]
    out = df.with_columns(
        pl.when(pl.col(name).str.contains(_PATTERN))
        .then(pl.lit(QUOTE) + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in text
    )
    return out.rename({n: cell(n) for n in schema.names() if cell(n) != n})
