"""A file as lines, and a layout's fields cut from them: what every reader of a file does.

Kept apart from the parser's validation (pandera is not imported here), so the benchmark's
floor, which reads and loads a file with no validation, runs this same code.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from hotlist.layout import Layout


def read_lines(path: Path) -> pl.DataFrame:
    """Every line of ``path`` as ``(line_no, text)``; CR of CRLF removed, blanks kept as ''."""
    try:
        frame = pl.read_csv(
            path,
            separator="\x1f",
            quote_char=None,
            has_header=False,
            new_columns=["text"],
            schema={"text": pl.String},
            encoding="utf8-lossy",
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        frame = _read_lines_exact(path)
    if frame.width != 1:
        frame = _read_lines_exact(path)
    return (
        frame.with_columns(pl.col("text").fill_null(""))
        .with_row_index("line_no", offset=1)
        .with_columns(pl.col("line_no").cast(pl.Int64))
    )


def _read_lines_exact(path: Path) -> pl.DataFrame:
    """The slow, exact reader for files the fast one cannot split (control bytes)."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # as the fast reader does
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    text = [ln.rstrip(b"\r").decode("utf-8", "replace") for ln in lines]
    return pl.DataFrame({"text": text}, schema={"text": pl.String})


def field_exprs(layout: Layout) -> dict[str, pl.Expr]:
    """Each field of the layout as an expression over the line ``text``, trimmed."""
    text = pl.col("text")
    if layout.format == "fixed":
        return {
            f.name: text.str.slice(f.start, None if f.end is None else f.end - f.start)
            .str.strip_chars()
            .alias(f.name)
            for f in layout.fields
        }
    parts = text.str.split(layout.separator)
    return {
        f.name: parts.list.get(i, null_on_oob=True).str.strip_chars().alias(f.name)
        for i, f in enumerate(layout.fields)
    }


def fields(lines: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """``line_no``, the layout's fields, and ``_shape_ok`` (a CSV line has every field)."""
    if layout.format == "fixed":
        shape_ok = pl.lit(True)
    else:
        shape_ok = pl.col("text").str.count_matches(layout.separator, literal=True) == (
            len(layout.fields) - 1
        )
    return lines.select("line_no", *field_exprs(layout).values(), shape_ok.alias("_shape_ok"))
