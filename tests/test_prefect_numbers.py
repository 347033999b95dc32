"""Numbers the flows write into Prefect's database are written in groups of three digits.

A flow run's logs, state messages and artifacts stay in Prefect's database (under
``PREFECT_HOME``, which every purge searches as raw bytes) as long as Prefect keeps the
run. A count written there as ``186030`` (a landed file's bytes, a version's entries,
a guard's removals) is where a removed plate ``186030`` stands, and failed every later
purge. Written ``186,030``, no plate of five or more digits stands in it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotlist.chance import grouped, stands
from hotlist.config import load_settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from tests.builders import Drop, ncic_file, ncic_line


def test_a_removed_plate_equal_to_a_landed_files_byte_count_does_not_fail_the_purge(
    prefect_db: Path, drop: Drop, tmp_path: Path
) -> None:
    """Day 1's extract is exactly as many bytes as the digits of a plate it carries; the
    ingest flow logs that size. Day 2 removes the plate: the purge searches Prefect's
    database and passes."""
    from flows.ingest_then_purge import ingest_then_purge

    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.ncic]\nurl = "file://{drop.root}"\n'
        "guards = {max_removal_share = 0.5}\n"
    )
    keep = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(400)]
    size = len(ncic_file([*keep, ncic_line("V000000901", "00000")]).encode())
    plate = str(size)
    assert len(plate) == 5
    day1 = ncic_file([*keep, ncic_line("V000000901", plate)])
    assert len(day1.encode()) == size
    drop.put("VEHEXTRT.txt", day1)
    ingested, purged = ingest_then_purge("ncic", str(config))
    assert ingested.is_completed() and purged is not None and purged.is_completed()
    held = b"".join(p.read_bytes() for p in prefect_db.iterdir() if p.is_file())
    assert f"landed: {size:,} bytes".encode() in held, "the flow logged the size"

    settings = load_settings(config, environ={})
    drop.put("VEHEXTRT.txt", ncic_file(keep, stamp="202611221800"))
    ingest_source(settings, "ncic")
    result = purge(settings, prefect_db)
    assert result.verification.ok, result.verification.findings
    assert result.purged == 1


_WORDS = st.sampled_from(
    ["V123456789", "sha256=12ab34cd", "2026-12-04T14:47:08Z", "12.34567", "/a/b",
     "ab-1234-5678", "0x1234ff", "run", "of", "entries", "+", "-", "(", ")", ":"]
)  # fmt: skip


@given(st.lists(st.one_of(st.integers(0, 10**12).map(str), _WORDS), max_size=12))
def test_grouped_text_holds_no_whole_number_of_five_digits_and_nothing_else_changes(
    parts: list[str],
) -> None:
    text = " ".join(parts)
    out = grouped(text)
    for number in re.findall(r"(?<![\w.:/=])(?<!\w[+-])\d{5,}(?![\w./-])", out):
        pytest.fail(f"{number} left whole")
    # Only commas were added, and only inside numbers.
    assert re.sub(r"(?<=\d),(?=\d{3})", "", out) == text
    for part in parts:
        if not part.isdigit():
            assert part in out
        elif len(part) >= 5:
            assert not stands(out, part), "a number written on its own is no plate any more"


def test_numbers_inside_words_hashes_times_and_paths_are_left_as_they_are() -> None:
    for text in ["V123456789", "sha256=123456789012", "2026-12-04T14:47:08Z", "0.12345",
                 "/data/12345/x", "uuid 1234abcd-1234-5678", "127.0.0.1:8080"]:  # fmt: skip
        assert grouped(text) == text
    assert grouped("applied: 1680000 entries, +16817 -16817") == (
        "applied: 1,680,000 entries, +16,817 -16,817"
    )
    assert grouped("line 1234567: x") == "line 1,234,567: x"
    assert grouped("the 2026 extract, 1234 lines") == "the 2026 extract, 1234 lines"
