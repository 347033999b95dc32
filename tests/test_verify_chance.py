"""A removed plate found where it can only be the digits of something else is no finding.

Plates of digits only are common (whole states issue them), and every file the system
keeps is full of digits: the NICs of the deletion reports, times, counts, UUIDs and hashes
in Prefect's database and logs. A removed ``3456789`` inside the NIC ``V123456789`` of an
earlier report made every later purge fail, for good: the reports are kept. A plate
where it can be a plate (a field of its own, a JSON string, a key built of state and
plate, a line of an extract) is still found, in every encoding.
"""

from __future__ import annotations

import json
import string
import uuid
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotlist.chance import ENCODINGS, stands
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.scan import ByteSearch, holding, raw_patterns, scan_table
from hotlist.verify import verify
from hotlist.verify_access import AccessLogSearch
from tests.builders import Drop, clew_line, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]


def test_a_digit_plate_inside_a_nic_of_an_earlier_deletion_report_does_not_fail_the_purge(
    relaxed: Settings, drop: Drop
) -> None:
    """Day 2 removes V123456789 (its report names it); day 3 removes the plate 3456789."""
    first = ncic_line("V123456789", "ZQX9001")
    second = ncic_line("V000000777", "3456789")
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, first, second]))
    ingest_source(relaxed, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, second], stamp="202611221800"))
    ingest_source(relaxed, "ncic")
    assert purge(relaxed, None).verification.ok
    reports = sorted((relaxed.data_dir / "reports").glob("deletions-run*.json"))
    assert any(b"V123456789" in r.read_bytes() for r in reports)

    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611230800"))
    ingest_source(relaxed, "ncic")
    result = purge(relaxed, None)
    assert result.verification.ok, result.verification.findings
    assert result.purged == 1
    # The plate itself, left where a plate stands, is still found in those reports' place.
    (relaxed.data_dir / "reports" / "note.txt").write_text("removed: 3456789\n")
    found = verify(relaxed.data_dir, None, ["3456789"])
    assert [f.place for f in found.findings] == [str(relaxed.data_dir / "reports" / "note.txt")]


def _files(tmp_path: Path, texts: dict[str, str], encoding: str = "utf-8") -> Path:
    root = tmp_path / "copies"
    root.mkdir(exist_ok=True)
    for name, text in texts.items():
        (root / name).write_bytes(text.encode(encoding))
    return root


def _found(store: Settings, root: Path, markers: list[str]) -> set[str]:
    result = verify(store.data_dir, None, markers, extra_roots=[root])
    return {Path(f.place).name for f in result.findings}


def test_digit_plates_inside_numbers_hashes_and_uuids_are_no_finding(
    store: Settings, tmp_path: Path
) -> None:
    ids = [str(uuid.UUID(int=n * 0x1234567 + 0x34567000)) for n in range(200)]
    noise = {
        "report.json": json.dumps({"record": "NIC V123456789", "latency_s": 7.099292999999999}),
        "flow.log": "\n".join(f"12:00:01.123456 INFO run {i} took 0.3456789 s" for i in ids),
        "hash.txt": "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
        "counts.csv": "entries,bytes\n16734567,23456789012\n",
    }
    root = _files(tmp_path, noise)
    assert (
        _found(store, root, ["3456789", "34567", "08188", "23456", "6734567", "V12345", "099292"])
        == set()
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_digit_plate_where_a_plate_stands_is_found_in_every_encoding(
    store: Settings, tmp_path: Path, encoding: str
) -> None:
    leaks = {
        "log.txt": "2026-12-03 lookup plate=3456789 state=CA\n",
        "row.json": '{"plate": "3456789", "nic": "V000000777"}',
        "clew.txt": clew_line("3456789") + "\n",
        "key.txt": "CA3456789|stolen\n",
        "vin.txt": "plate ZQ3456789X seen\n",
    }
    root = _files(tmp_path, leaks, encoding)
    # Letters touching it are no number: a key of state and plate is found too.
    assert _found(store, root, ["3456789"]) == set(leaks)
    assert _found(store, root, ["ZQ3456789X"]) == {"vin.txt"}
    assert _found(store, root, ["CA3456789"]) == {"key.txt"}


def test_a_plate_ending_in_a_digit_followed_by_one_is_a_longer_value(
    store: Settings, tmp_path: Path
) -> None:
    root = _files(tmp_path, {"report.html": "<td>NIC V123456789</td>", "copy.txt": "7ABC1234\n"})
    assert _found(store, root, ["V12345", "7ABC123"]) == set()
    assert _found(store, root, ["V123456789", "7ABC1234"]) == {"report.html", "copy.txt"}


def test_a_plate_across_two_blocks_is_judged_with_the_character_before_it() -> None:
    search = ByteSearch(raw_patterns(["3456789"]))
    clean = b"x" * (16 << 20) + b"12" + b"3456789 " + b"x" * 100
    assert not search.hit(clean)
    from io import BytesIO

    cut = (16 << 20) - 3  # the block ends inside the plate; the digit before it in the block
    data = b"x" * cut + b"V123456789 " + b"x" * 100
    assert not search.stream(BytesIO(data))
    assert search.stream(BytesIO(b"x" * cut + b"V 3456789 " + b"x" * 100))


def test_a_quarantined_line_with_a_nic_holding_a_removed_digit_plate_is_no_finding() -> None:
    lines = pl.DataFrame({"raw_line": [ncic_line("V123456789", "7KEEP001"), "not a record"]})
    assert scan_table(lines.lazy(), pl.Series(["3456789"])) == []
    leaked = pl.DataFrame({"raw_line": [clew_line("3456789"), None]})
    assert scan_table(leaked.lazy(), pl.Series(["3456789"])) == [
        ("raw_line", "1 values hold content of a removed record")
    ]
    assert holding(["3456789"], pl.Series(["a 3456789", "V123456789", None])).to_list() == [
        True,
        False,
        False,
    ]


def test_the_access_log_judges_a_plate_inside_a_nic_as_the_nic(tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    lines = [
        {"seq": 1, "element": "7KEEP001", "outcome": "hit V123456789"},
        {"seq": 2, "element": "7KEEP002", "note": "seen 3456789 at dawn"},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))
    found = AccessLogSearch(["3456789"], []).scan(log)
    assert [where for where, _ in found] == ["line 2:note"]


_ALNUM = string.ascii_uppercase + string.digits
_CLEAR = " \t\n,;:=\"'|/<>()[]{}-_.GHIJKLMNOPQRSTUVWXYZghijklmnopqrstuvwxyz"


@settings(max_examples=150, deadline=None)
@given(
    marker=st.text(_ALNUM, min_size=5, max_size=8),
    before=st.text(_CLEAR, max_size=12),
    after=st.text(_CLEAR, max_size=12),
    encoding=st.sampled_from(ENCODINGS),
)
def test_a_plate_between_characters_that_are_no_digits_is_always_found(
    marker: str, before: str, after: str, encoding: str
) -> None:
    """Whatever the plate, and whatever surrounds it that is no digit or hexadecimal
    letter (a lowercase a-f could be a hash's), it is found, in every encoding."""
    text = before + marker + after
    assert stands(text, marker)
    assert ByteSearch(raw_patterns([marker])).hit(text.encode(encoding))


@settings(max_examples=150, deadline=None)
@given(
    marker=st.text(string.digits, min_size=5, max_size=8),
    before=st.text(string.digits + "abcdef", min_size=1, max_size=12),
    after=st.text(string.digits + "abcdef", min_size=1, max_size=12),
)
def test_a_digit_plate_inside_a_longer_number_or_hash_is_never_found(
    marker: str, before: str, after: str
) -> None:
    text = before + marker + after
    assert not stands(text, marker)
    assert not ByteSearch(raw_patterns([marker])).hit(text.encode())
