"""An HTML table built from a frame's columns in one pass, not a template call per cell.

A deletion report lists every removed record: 16,000 on a day that drops 1 % of a 2M-line
extract, 100,000 and more after a bulk cancellation. Escaping and joining the cells as
column expressions takes milliseconds where a Python call per cell took seconds. The
escaping is :func:`html.escape`'s (``&``, ``<``, ``>``, ``"``, ``'``), done in a single
pass over each value, so an ampersand is never escaped twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from hotlist.reports.page import esc

_SPECIAL = ["&", "<", ">", '"', "'"]
_ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;"]


def escaped(value: pl.Expr) -> pl.Expr:
    """A column as HTML text, exactly as :func:`hotlist.reports.page.esc` writes a value
    (null as empty)."""
    return value.cast(pl.String).str.replace_many(_SPECIAL, _ENTITIES).fill_null("")


def frame_table(
    frame: pl.DataFrame,
    headers: Sequence[str],
    numeric: frozenset[str] = frozenset(),
    times: frozenset[str] = frozenset(),
) -> str:
    """``frame``'s cells (already text or numbers) as the same table as
    :func:`hotlist.reports.page.table` writes: one ``<tr>`` per row, cells escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    cells: list[pl.Expr] = [pl.lit("<tr>")]
    for name in frame.columns:
        kind = ' class="num"' if name in numeric else ' class="time"' if name in times else ""
        cells += [pl.lit(f"<td{kind}>"), escaped(pl.col(name)), pl.lit("</td>")]
    cells.append(pl.lit("</tr>"))
    body = frame.select(pl.concat_str(cells).str.join("")).item() if frame.height else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
