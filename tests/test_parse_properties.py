"""Property tests: the parser and normalizers never crash and never lose a line."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotlist import normalize as norm
from hotlist.codes import code_shapes
from hotlist.layout import load_layout
from hotlist.parse import FileRejected, parse_file
from tests.builders import clew_line, ncic_line

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
ANY_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\n\r"), max_size=80
)


@given(st.text(max_size=20))
def test_plate_normalization_keeps_only_letters_and_digits_and_is_idempotent(raw: str) -> None:
    once = norm.plate_value(raw)
    assert all(ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" for ch in once)
    assert norm.plate_value(once) == once


@given(st.lists(st.text(max_size=12), max_size=20))
def test_the_vectorized_and_scalar_plate_normalizers_agree(raws: list[str]) -> None:
    frame = pl.DataFrame({"raw": raws}, schema={"raw": pl.String})
    plates = frame.select(norm.plate(pl.col("raw")))["raw"].to_list()
    assert plates == [norm.plate_value(r) for r in raws]


@given(st.lists(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=4), max_size=20))
def test_the_vectorized_and_scalar_code_normalizers_agree(raws: list[str]) -> None:
    """Codes are ASCII; a non-ASCII code is an unknown code whichever way it is cased."""
    frame = pl.DataFrame({"raw": raws}, schema={"raw": pl.String})
    states = frame.select(norm.state(pl.col("raw")))["raw"].to_list()
    assert states == [norm.state_value(r) for r in raws]


@given(st.text(alphabet="0OABCDH PQNF", max_size=6))
def test_code_normalization_reads_digit_zero_as_letter_o(raw: str) -> None:
    assert "0" not in norm.code_value(raw)
    assert norm.code_value(norm.code_value(raw)) == norm.code_value(raw)


def test_legacy_codes_and_aliases() -> None:
    assert norm.state_value("0H") == "OH"
    assert norm.state_value("PQ") == "QC"
    assert norm.state_value("nf") == "NL"
    assert norm.code_value("D0DG") == "DODG"
    assert norm.code_value("C0") == "CO"
    assert norm.ocr_key("8OB1") == norm.ocr_key("BD8I")


def _parse(text: str, layout: str, feed: str) -> object:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file"
        path.write_text(text, encoding="utf-8")
        try:
            return parse_file(
                path,
                load_layout(layout),
                feed,
                "stolen_vehicle" if feed == "svs" else None,
                frozenset("VPFRAM"),
                NOW,
            )
        except FileRejected as exc:
            return exc


def _accounted(parsed: object, hit_types: str | None = None) -> None:
    """Every record line loads, is quarantined, is excluded, or is a reported duplicate;
    a quarantined line keeps its text only when it is of one of ``hit_types`` (NCIC)."""
    if isinstance(parsed, FileRejected):
        assert parsed.rule and str(parsed)
        return
    from hotlist.parse import ParsedFile

    assert isinstance(parsed, ParsedFile)
    duplicates = parsed.issues.filter(pl.col("rule") == "identity.duplicate").height
    total = (
        parsed.entries.height
        + parsed.quarantine.height
        + sum(parsed.excluded.values())
        + duplicates
    )
    assert total == parsed.record_lines
    loaded = set(parsed.entries["line_no"].to_list())
    quarantined = set(parsed.quarantine["line_no"].to_list())
    assert not loaded & quarantined
    assert all(r for r in parsed.quarantine["rules"].to_list())
    if hit_types is not None:
        kept = parsed.quarantine["raw_line"].drop_nulls().to_list()
        assert all(norm.hit_type_letter_value(line) in hit_types for line in kept)
    for field, shape in code_shapes().items():  # a stored code has the shape of a code
        values = parsed.entries[field].drop_nulls()
        assert values.str.contains(shape).all(), field


#: Hit type letters as they come: plain, disguised (a byte order mark, a quote, a
#: full-width letter, white space before it) and none at all.
letter = st.builds(
    lambda lead, t: lead + t,
    st.sampled_from(["", "", "", "\ufeff", '"', " ", "\u3000", "\u200b"]),
    st.sampled_from([*"VPFRAMNWX?n", "\uff2e", "\uff36", "\u2115"]),
)
nic = st.builds(lambda t, n: f"{t}{n:09d}", letter, st.integers(0, 10**9 - 1))
plate = st.one_of(
    st.text(alphabet="ABC123 -.@", min_size=0, max_size=10), st.sampled_from(["NONE", "UNK", "000"])
)
state = st.sampled_from(["CA", "0H", "PQ", "ZZ", "", "NV"])
date = st.sampled_from(["20240105", "20241340", "", "2024010", "ABCDEFGH"])
#: Codes as they come: known, unknown, legacy, and formulas that are no code at all.
code = st.sampled_from(["BLK", "BLK/WHI", "AQU", "D0DG", "4D", "=1+1", "@X", "-2", "+A", "\tB"])
ncic_record = st.one_of(
    st.builds(
        lambda n, p, s, d, c: ncic_line(
            n, p[:10], s, date=d, make=c[:4], model=c[:3], style=c[:2], colour=c
        ),
        nic,
        plate,
        state,
        date,
        code,
    ),
    ANY_TEXT,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(ncic_record, max_size=25), st.booleans())
def test_any_ncic_extract_parses_or_is_rejected_whole_and_loses_no_line(
    records: list[str], header: bool
) -> None:
    lines = (["NCIC LPR EXTRACT 202611220800"] if header else []) + records
    _accounted(_parse("\n".join(lines) + "\n", "ncic-fixed", "ncic"), "VPFRAM")
    csv = "\n".join(ln.replace(" ", ",") for ln in lines) + "\n"
    _accounted(_parse(csv, "ncic-csv", "ncic"), "VPFRAM")


clew_record = st.one_of(
    st.builds(lambda p, s, d: clew_line(p[:8], s, "19", d), plate, state, date), ANY_TEXT
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(clew_record, max_size=25), st.integers(-1, 1))
def test_any_clew_table_parses_or_is_rejected_whole_and_loses_no_line(
    records: list[str], skew: int
) -> None:
    declared = max(len(records) + skew, 0)
    text = "\n".join(["DATE11/22/2026 08:00", *records, f"TOTAL RECORD {declared:07d}"]) + "\n"
    parsed = _parse(text, "clew-svs", "svs")
    _accounted(parsed)
    if declared != len(records) and all(r.strip() for r in records):
        assert isinstance(parsed, FileRejected)
