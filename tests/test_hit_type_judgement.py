"""SB 54: a line is stored only when it is positively of an allowed hit type.

The hit type of an NCIC line is judged as a person reads the line: after NFKC
normalization, with byte order marks, white space and quotes before its letter stripped.
A line that shows an ``N`` (immigration violator) however it is disguised leaves nothing
of itself in ``data_dir``: no byte of it in any file, no value of it in any table. A line
of no known hit type is quarantined as its number, rule and keyed hash, never its text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import tempfile
import unicodedata
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotlist import normalize as norm
from hotlist.config import load_settings
from hotlist.ingest import ingest_source
from hotlist.layout import load_layout
from hotlist.parse import UNKNOWN_HIT_TYPE, parse_file
from hotlist.store import control_path
from tests.builders import Drop, ncic_file, ncic_line

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def _normalizes_to_n(ch: str) -> bool:
    return unicodedata.normalize("NFKC", ch)[:1] in ("N", "n")


#: Every character that reads as the letter N after NFKC (full-width, circled, math ...).
N_LOOKALIKES = sorted(
    ch
    for ch in map(chr, [*range(0x20, 0x3000), *range(0xFF00, 0xFFF0), *range(0x1D400, 0x1D800)])
    if _normalizes_to_n(ch)
)
#: What may stand before the letter: byte order marks, zero-width and other spaces,
#: control characters, quotes.
LEAD = [
    "\ufeff", "\u200b", "\u2060", "\u00a0", "\u3000", "\u2003", " ", "\t", "\x0b", "\x00",
    '"', "'", "`", "\u201c", "\u2018", "\u00ab", "\u201e", "\uff02",
]  # fmt: skip


def test_the_lookalikes_are_what_they_claim() -> None:
    assert {"N", "n", "\uff2e", "\uff4e", "\u2115", "\u24c3", "\u2116"} <= set(N_LOOKALIKES)


@given(st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=12), max_size=30))
def test_the_vectorized_hit_type_judge_agrees_with_its_plain_python_reference(
    lines: list[str],
) -> None:
    judged = norm.hit_type_letters(pl.Series(lines, dtype=pl.String)).to_list()
    assert judged == [norm.hit_type_letter_value(line) for line in lines]


@given(st.lists(st.sampled_from(LEAD), max_size=4), st.sampled_from(N_LOOKALIKES))
def test_a_disguised_n_is_judged_an_n(lead: list[str], letter: str) -> None:
    line = "".join(lead) + letter + "000000005CA0190000"
    assert norm.hit_type_letter_value(line) == "N"
    assert norm.hit_type_letters(pl.Series([line])).to_list() == ["N"]


def _n_line(layout: str, lead: str, letter: str, digits: str, plate: str, quoted: bool) -> str:
    if layout == "ncic-fixed":
        return lead + letter + ncic_line(f"N{digits}", plate)[1:]
    nic = f"{letter}{digits}" + ('"' if quoted else "")
    return f"{lead}{nic},CA0190000,20240105,{plate},CA,2025,PC,2019,TOYT,CAM,4D,BLK"


def _v_line(layout: str, number: int) -> str:
    line = ncic_line(f"V{number:09d}", f"7GOOD{number:02d}")
    if layout == "ncic-fixed":
        return line
    return f"V{number:09d},CA0190000,20240105,7GOOD{number:02d},CA,2025,PC,2019,TOYT,CAM,4D,BLK"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_findings(data_dir: Path, needles: list[str]) -> list[str]:
    """Every string value of every table of every DuckDB file that holds a needle."""
    found = []
    for path in sorted(data_dir.rglob("*.duckdb")):
        con = duckdb.connect(str(path), read_only=True)
        try:
            columns = con.sql(
                "SELECT schema_name, table_name, column_name FROM duckdb_columns()"
                " WHERE database_name = current_database() AND data_type LIKE '%VARCHAR%'"
            ).fetchall()
            for schema, table, column in columns:
                relation = f"{_quoted(schema)}.{_quoted(table)}"
                for needle in needles:
                    [(count,)] = con.execute(
                        f"SELECT count(*) FROM {relation}"  # noqa: S608 (quoted identifiers and constant fragments; values bound)
                        f" WHERE contains(CAST({_quoted(column)} AS VARCHAR), ?)",
                        [needle],
                    ).fetchall()
                    if count:
                        found.append(f"{path.name}:{table}.{column}")
        finally:
            con.close()
    return found


def _byte_findings(data_dir: Path, needles: list[bytes]) -> list[str]:
    return [
        str(path.relative_to(data_dir))
        for path in sorted(data_dir.rglob("*"))
        if path.is_file() and any(n in path.read_bytes() for n in needles)
    ]


disguised_n = st.tuples(
    st.lists(st.sampled_from(LEAD), max_size=3).map("".join),
    st.sampled_from(N_LOOKALIKES),
    st.integers(0, 10**9 - 1).map(lambda n: f"{n:09d}"),
    st.text("XJKQZ0123456789", min_size=6, max_size=6).map(lambda s: f"ZQ{s}"),
    st.booleans(),
)


@pytest.mark.parametrize("layout", ["ncic-fixed", "ncic-csv"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(disguised_n, min_size=1, max_size=3, unique_by=lambda t: (t[2], t[3])))
def test_a_line_whose_normalized_first_character_is_n_leaves_no_byte_of_itself_in_data_dir(
    layout: str, n_lines: list[tuple[str, str, str, str, bool]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        drop = Drop(root / "drop")
        config = root / "hotlist.toml"
        config.write_text(
            f'data_dir = "data"\n[sources.svs]\nurl = "file://{drop.root}"\n'
            f'[sources.ncic]\nurl = "file://{drop.root}"\nlayout = "{layout}"\n'
            "guards = {max_row_error_share = 0.9}\n"
        )
        hotlist = load_settings(config, environ={})
        lines = [_n_line(layout, *n) for n in n_lines]
        assert all(norm.hit_type_letter_value(line) == "N" for line in lines)
        good = [_v_line(layout, i) for i in range(1, 4)]
        drop.put("VEHEXTRT.txt", ncic_file([good[0], *lines, *good[1:]]))
        ingest_source(hotlist, "ncic")
        data_dir = hotlist.data_dir
        needles = [
            text
            for line, (_, letter, digits, plate, _) in zip(lines, n_lines, strict=True)
            for text in (
                line.strip(),
                unicodedata.normalize("NFKC", line).strip(),
                f"{letter}{digits}",
                f"N{digits}",
                plate,
            )
        ]
        assert _byte_findings(data_dir, [n.encode() for n in needles]) == []
        assert _sql_findings(data_dir, needles) == []
        # The allowed lines around them did load.
        con = duckdb.connect(str(control_path(data_dir)), read_only=True)
        try:
            [(entries,)] = con.execute(
                "SELECT entries FROM versions WHERE feed = 'ncic'"
            ).fetchall()
        finally:
            con.close()
        assert entries == len(good)


def test_a_line_of_no_known_hit_type_is_quarantined_as_number_rule_and_keyed_hash(
    tmp_path: Path,
) -> None:
    key = bytes(range(32))
    odd = "\u0301" + ncic_line("N000000005", "ZQXSECRET")[1:]  # a combining mark first
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text(ncic_file([ncic_line("V000000001", "7ABC123"), odd]))
    parsed = parse_file(
        path, load_layout("ncic-fixed"), "ncic", None, frozenset("V"), NOW, hash_key=key
    )
    [row] = parsed.quarantine.to_dicts()
    derived = hmac.new(key, b"quarantined-line", hashlib.sha256).hexdigest().encode()
    assert row == {
        "line_no": 3,
        "raw_line": None,
        "rules": UNKNOWN_HIT_TYPE,
        "carry_record_id": None,
        "carry_plate": None,
        "carry_state": None,
        "line_hash": hmac.new(derived, odd.encode(), hashlib.sha256).hexdigest(),
    }
    assert parsed.issues.rows() == [(3, "record_id", UNKNOWN_HIT_TYPE, "error")]


def test_a_quarantined_line_of_an_allowed_hit_type_keeps_its_text(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    bad_date = ncic_line("V000000001", "7ABC123", date="2024XX05")
    path.write_text(ncic_file([bad_date]))
    parsed = parse_file(path, load_layout("ncic-fixed"), "ncic", None, frozenset("V"), NOW)
    assert parsed.quarantine.select("raw_line", "carry_record_id").row(0) == (
        bad_date,
        "V000000001",
    )


@pytest.mark.parametrize("letter", ["N", "n", "\uff2e", "\u2115"])
@pytest.mark.parametrize("lead", ["", "\ufeff", '"', "\u3000\u200b"])
def test_a_disguised_n_line_is_counted_as_an_sb54_exclusion(
    tmp_path: Path, letter: str, lead: str
) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text(ncic_file([lead + letter + ncic_line("N000000005", "ZQXSECRET")[1:]]))
    parsed = parse_file(path, load_layout("ncic-fixed"), "ncic", None, frozenset("VN"), NOW)
    assert parsed.excluded["immigration_violator_sb54"] == 1
    assert parsed.entries.height == parsed.quarantine.height == parsed.issues.height == 0


def test_the_hit_type_is_judged_where_an_agency_layout_puts_the_record_id(
    tmp_path: Path,
) -> None:
    layout = tmp_path / "our-extract.toml"
    layout.write_text(
        'name = "our-extract"\nformat = "csv"\nseparator = "|"\n'
        'identity = ["record_id", "plate", "state"]\n'
        + "".join(
            f'[[fields]]\nname = "{n}"\n' for n in ("plate", "state", "record_id", "record_date")
        )
    )
    path = tmp_path / "extract.txt"
    path.write_text('7ABC123|CA|V000000001|20240105\nZQXSECRET|CA|"\uff2e000000002"|20240105\n')
    parsed = parse_file(path, load_layout(str(layout)), "ncic", None, frozenset("V"), NOW)
    assert parsed.entries["record_id"].to_list() == ["V000000001"]
    assert parsed.excluded["immigration_violator_sb54"] == 1
    assert parsed.quarantine.height == 0


def test_a_real_ingest_keeps_the_keyed_hash_of_a_line_of_no_known_hit_type(
    tmp_path: Path,
) -> None:
    """The store's local key reaches the parser: the quarantine row stands for the line."""
    drop = Drop(tmp_path / "drop")
    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.svs]\nurl = "file://{drop.root}"\n'
        f'[sources.ncic]\nurl = "file://{drop.root}"\n'
        "guards = {max_row_error_share = 0.9}\n"
    )
    hotlist = load_settings(config, environ={})
    odd = "\u0301" + ncic_line("N000000005", "ZQXSECRET")[1:]
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7ABC123"), odd]))
    ingest_source(hotlist, "ncic")
    [content] = (hotlist.data_dir / "store" / "feeds" / "ncic").glob("v*.duckdb")
    con = duckdb.connect(str(content), read_only=True)
    try:
        rows = con.execute("SELECT raw_line, line_hash FROM quarantine").fetchall()
    finally:
        con.close()
    [(raw_line, line_hash)] = rows
    assert raw_line is None
    assert line_hash is not None
    assert len(line_hash) == 64
