"""The deletion report's formats, written from columns: hostile text stays text in every
format, the HTML table is exactly the one a cell-by-cell template writes, a page of more
records than it lists says so and lists those needing attention first, and every record
is in the JSON however many there are."""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
import json
from html.parser import HTMLParser

import polars as pl
import pytest

from hotlist import csvsafe
from hotlist.config import Settings
from hotlist.reports import deletion_report, deletion_rows, render
from hotlist.reports.frame_html import frame_table
from hotlist.reports.page import table
from hotlist.store import control as ctl

render_module = importlib.import_module("hotlist.reports.render")
DAY = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
HOSTILE = [
    "<script>alert('x')</script>",
    'a "quoted" & <b>bold</b> reason',
    "&amp; already an entity, &lt;not a tag&gt;",
    '=HYPERLINK("http://x")',
    "\uff1cscript\uff1e full-width look-alikes \u2039\u203a \u0430dmin",  # not markup
    "right-to-left \u202eoverride\u202c, zero\u200bwidth, line\u2028separator",
    "line one\nline two\ttab\r\\backslash",
    "</td></tr></tbody></table><img src=x onerror=alert(1)>",
]
PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "thead",
    "tbody", "tr", "th", "td", "code", "svg", "text", "line", "rect", "circle",
}  # fmt: skip


class _Tables(HTMLParser):
    """Every tag of a page, and each table's rows as the texts of their cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parsed(page: str) -> _Tables:
    parser = _Tables()
    parser.feed(page)
    parser.close()
    return parser


def _records_table(page: str) -> list[dict[str, str]]:
    parsed = _parsed(page)
    [records] = [t for t in parsed.tables if t and t[0][:2] == ["source", "feed"]]
    header, *body = records
    return [dict(zip(header, row, strict=True)) for row in body]


def _store(settings: Settings, removals: list[tuple[str, str, float | None]]) -> None:
    """Removals (NIC, reason, seconds to purge or None while outstanding), a minute
    apart; purged ones by purge run 1."""
    con = ctl.connect(settings.data_dir)
    try:
        for i, (nic, reason, latency) in enumerate(removals):
            detected = DAY + dt.timedelta(minutes=i)
            purged = None if latency is None else detected + dt.timedelta(seconds=latency)
            con.execute(
                "INSERT INTO tombstones VALUES (?, 'ncic', 'stolen_vehicle', ?, ?, ?, 2, ?, ?, ?)",
                [i + 1, nic, f"{i:064x}", reason, detected, purged,
                 None if purged is None else "purge run 1: PASS"],
            )  # fmt: skip
        checked = {"ok": True, "findings": [], "files": 3, "bytes": 1, "markers": len(removals)}
        con.execute(
            "INSERT INTO purge_runs VALUES (1, ?, ?, 'sweep', ?, 1, TRUE, ?, NULL)",
            [DAY, DAY, len(removals), json.dumps(checked)],
        )
    finally:
        con.close()


def test_hostile_record_text_stays_text_in_html_json_and_csv(settings: Settings) -> None:
    _store(settings, [(f"V{i:09d}{text}", text, 4.0 + i) for i, text in enumerate(HOSTILE)])
    rows, summary = deletion_report(settings)

    page = render(rows, summary, "html", "Deletion report")
    parsed = _parsed(page)
    assert parsed.tags <= PAGE_TAGS, parsed.tags - PAGE_TAGS  # no <script>, no <img>
    shown = _records_table(page)
    assert [r["reason"] for r in shown] == HOSTILE
    assert [r["record"] for r in shown] == [f"NIC V{i:09d}{t}" for i, t in enumerate(HOSTILE)]

    records = json.loads(render(rows, summary, "json", "t"))["records"]
    assert [r["reason"] for r in records] == HOSTILE

    written = list(csv.DictReader(io.StringIO(render(rows, summary, "csv", "t"))))
    assert [csvsafe.restore(r["reason"]) for r in written] == HOSTILE


def test_the_table_from_columns_is_the_table_a_cell_by_cell_template_writes() -> None:
    cells = {
        "text": [*HOSTILE, None, ""],
        "count": [*range(len(HOSTILE)), None, 0],
        "at": ["2026-11-22T08:00:00Z"] * len(HOSTILE) + [None, "x"],
    }
    frame = pl.DataFrame(cells, schema={"text": pl.String, "count": pl.Int64, "at": pl.String})
    expected = table(
        ["text <&>", "count", "at"],
        frame.rows(),
        numeric=frozenset({1}),
        times=frozenset({2}),
    )
    got = frame_table(
        frame, ["text <&>", "count", "at"], numeric=frozenset({"count"}), times=frozenset({"at"})
    )
    assert got == expected
    assert frame_table(frame.clear(), ["a"]) == table(["a"], [])


def test_the_json_holds_one_record_a_line_and_parses_back_to_every_row(
    settings: Settings,
) -> None:
    _store(settings, [(f"V{i:09d}", "removed upstream", 3.8 + i) for i in range(40)])
    rows, summary = deletion_report(settings)
    text = render(rows, summary, "json", "t")
    report = json.loads(text)
    assert report["summary"] == json.loads(json.dumps(summary))
    assert len(report["records"]) == 40
    assert [r["record"] for r in report["records"]] == [f"NIC V{i:09d}" for i in range(40)]
    assert report["records"][0]["latency_s"] == 3.8
    record_lines = [line for line in text.splitlines() if line.startswith('{"source"')]
    assert len(record_lines) == 40  # one line each: a reviewer can grep a NIC


def test_a_page_of_more_records_than_it_lists_says_so_and_lists_the_outstanding_first(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    removals: list[tuple[str, str, float | None]] = [
        (f"V{i:09d}", "removed upstream", 5.0) for i in range(12)
    ]
    removals += [("V000000900", "removed upstream", None), ("V000000901", "late", 99_999.0)]
    _store(settings, removals)
    monkeypatch.setattr(render_module, "HTML_ROWS", 5)
    rows, summary = deletion_report(settings)

    page = render(rows, summary, "html", "Deletion report")
    shown = [r["record"] for r in _records_table(page)]
    assert shown == ["NIC V000000900", "NIC V000000901"] + [f"NIC V{i:09d}" for i in range(3)]
    assert "This page lists 5 of the 14 removed records" in page
    assert "--format json" in page
    everything = json.loads(render(rows, summary, "json", "t"))["records"]
    assert len(everything) == 14


def test_a_page_within_the_limit_lists_every_record_without_a_note(settings: Settings) -> None:
    _store(settings, [(f"V{i:09d}", "removed upstream", 5.0) for i in range(14)])
    rows, summary = deletion_report(settings)
    page = render(rows, summary, "html", "Deletion report")
    assert len(_records_table(page)) == 14
    assert "This page lists" not in page


def test_times_are_utc_whatever_the_databases_time_zone(settings: Settings) -> None:
    _store(settings, [("V000000001", "removed upstream", 3.8)])
    con = ctl.connect(settings.data_dir)
    try:
        con.execute("SET TimeZone = 'America/Los_Angeles'")
        [row] = deletion_rows(con).iter_rows(named=True)
    finally:
        con.close()
    assert row["detected_at"] == DAY
    assert str(row["detected_at"].tzinfo) == "UTC"
    assert row["latency_s"] == 3.8
