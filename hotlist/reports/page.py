"""The HTML page every report uses: readable on screen, legible on paper (A4/Letter
landscape, table headers repeated on every printed page, no row split across pages)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

CSS = """
body{font-family:system-ui,"DejaVu Sans",sans-serif;margin:2em;color:#222;font-size:14px}
h1{font-size:22px}h2{font-size:17px;margin-top:1.6em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #bbb;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.num,td.time{white-space:nowrap}
.bad{color:#a00;font-weight:bold}.ok{color:#070}.note{color:#555}
code{font-size:12px;word-break:break-all}
svg.chart{max-width:100%;height:auto}
@page{size:landscape;margin:12mm}
@media print{
 body{margin:0;font-size:10pt}h1{font-size:15pt}h2{font-size:12pt;break-after:avoid}
 table{font-size:9pt;width:100%}thead{display:table-header-group}
 tr,svg.chart{break-inside:avoid}
 th{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


BAD = ' class="bad"'


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, parts: Iterable[str]) -> str:
    return "\n".join(
        [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{esc(title)}</h1>",
            *parts,
            "</body></html>",
        ]
    )


def facts(pairs: Sequence[tuple[str, str, bool]]) -> str:
    """A two-column table of (label, value already escaped, flagged bad)."""
    rows = "".join(
        f"<tr><th>{esc(label)}</th><td{BAD if bad else ''}>{value}</td></tr>"
        for label, value, bad in pairs
    )
    return f"<table>{rows}</table>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    numeric: frozenset[int] = frozenset(),
    times: frozenset[int] = frozenset(),
) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(v)}</td>'
            if i in numeric
            else f'<td class="time">{esc(v)}</td>'
            if i in times
            else f"<td>{esc(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
