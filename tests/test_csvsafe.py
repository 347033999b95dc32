"""CSV injection: cells a spreadsheet would evaluate are written as text; nothing a reader
compares changes, and the rule is exactly reversible."""

from __future__ import annotations

import csv
import io
import string

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotlist import csvsafe

HOSTILE = [
    '=HYPERLINK("http://x","y")',
    "@SUM(1+1)*cmd|x",
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "\t=1",
    "\r=1",
    " =1+1",
    "\ufeff=1+1",
    "\u200b@x",
    "\uff1dcmd",  # full-width equals sign
    "'=1",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_a_spreadsheet_would_evaluate_is_quoted(value: str) -> None:
    written = csvsafe.cell(value)
    assert written == "'" + value
    assert csvsafe.restore(written) == value


@pytest.mark.parametrize(
    "value",
    ["7ABC123", "CA0190000", "V000000001", "2026-12-02T05:27:47Z", "a" * 64, "patrol",
     "granted: 3 hits", "jdoe", "", "plate 7ABC123 state CA", "it's fine", "1-800"],
)  # fmt: skip
def test_codes_plates_times_and_plain_text_are_written_unchanged(value: str) -> None:
    assert csvsafe.cell(value) == value


@given(st.text())
def test_restore_undoes_cell_for_every_text(value: str) -> None:
    assert csvsafe.restore(csvsafe.cell(value)) == value


@given(st.text())
def test_no_written_cell_leads_with_a_trigger(value: str) -> None:
    written = csvsafe.cell(value)
    assert not written[:1] or written[0] not in csvsafe.TRIGGERS | {"\t", "\r"}


@given(st.text(alphabet=string.ascii_uppercase + string.digits + " :T.Z_/", max_size=30))
def test_text_starting_with_a_letter_digit_or_space_then_letters_is_unchanged(value: str) -> None:
    assert csvsafe.cell(value) == value


@given(st.lists(st.text(), min_size=1, max_size=20))
def test_the_polars_rule_is_the_same_rule(values: list[str]) -> None:
    frame = csvsafe.frame(pl.DataFrame({"v": values, "n": list(range(-5, len(values) - 5))}))
    assert frame["v"].to_list() == [csvsafe.cell(v) for v in values]
    assert frame["n"].to_list() == list(range(-5, len(values) - 5))


def test_write_rows_round_trips_through_a_csv_reader() -> None:
    buffer = io.StringIO()
    rows = [{"user": v, "seq": i} for i, v in enumerate(HOSTILE)]
    assert csvsafe.write_rows(buffer, ["user", "seq"], rows) == len(HOSTILE)
    read = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert all(r["user"].startswith("'") for r in read)
    assert [csvsafe.restore(r["user"]) for r in read] == HOSTILE
    assert [int(r["seq"]) for r in read] == list(range(len(HOSTILE)))
