"""The guards refuse a file that removes or loses more than its feed's own history makes
plausible, and say by how much, with the precision that tells the numbers apart."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotlist.config import FeedGuards, Settings
from hotlist.ingest import IngestFailed, ingest_source
from hotlist.lookup import find_hits
from hotlist.store.apply import ApplyResult
from hotlist.store.guards import Counts, History, percents, refusals
from tests.builders import Drop, ncic_file, ncic_line

SHA = "ab" * 32

#: Four ordinary days of an NCIC extract: about 0.3 % removed, a little growth.
ORDINARY = History(
    removal_shares=(0.003, 0.004, 0.0025, 0.0035),
    shrink_shares=(-0.0005, 0.001, -0.001, 0.0002),
    previous_record_lines=2_000_000,
)


def _rules(counts: Counts, history: History = ORDINARY, **limits: float) -> list[str]:
    return [r.rule for r in refusals("VEHEXTRT.txt", SHA, counts, history, FeedGuards(**limits))]


def test_a_2m_line_extract_cut_by_3_percent_at_a_line_boundary_is_refused() -> None:
    """60,000 of 2,000,000 lines gone by a clean cut: under the 5 % removal guard, but ten
    times what this feed removes on an ordinary day, and a shrink it never showed."""
    cut = Counts(
        record_lines=1_940_000,
        excluded=0,
        row_errors=0,
        removed=60_000,
        previous_entries=2_000_000,
    )
    found = refusals("VEHEXTRT.txt", SHA, cut, ORDINARY, FeedGuards())
    assert [r.rule for r in found] == ["removal-above-history", "shrink-above-history"]
    assert all(r.approvable for r in found)
    assert f"--approve-mass-removal {SHA}" in found[0].message
    assert "60000 of 2000000 entries (3.0% > 1.0% allowed" in found[0].message
    assert "1940000 record lines, 3.0% fewer than the previous version's 2000000" in (
        found[1].message
    )


def test_an_ordinary_day_passes() -> None:
    day = Counts(2_001_000, 0, 0, removed=7_000, previous_entries=2_000_000)
    assert _rules(day) == []


def test_a_busier_feed_gets_a_wider_limit_never_past_the_configured_one() -> None:
    busy = History((0.02, 0.015, 0.01), (0.02, 0.0, 0.01), 1_000_000)
    assert _rules(Counts(970_000, 0, 0, 30_000, 1_000_000), busy) == []  # 3 % < 2 x 2 %
    assert _rules(Counts(940_000, 0, 0, 60_000, 1_000_000), busy) == [
        "mass-removal",
        "shrink-above-history",
    ]


def test_a_young_feed_is_judged_by_the_configured_share_alone() -> None:
    """Two earlier diffs are no history yet: 3 % passes the 5 % default, 6 % does not."""
    young = History((0.003, 0.003), (0.0, 0.0), 2_000_000)
    assert _rules(Counts(1_940_000, 0, 0, 60_000, 2_000_000), young) == []
    assert _rules(Counts(1_880_000, 0, 0, 120_000, 2_000_000), young) == ["mass-removal"]


def test_one_row_error_in_99_rows_reads_as_more_than_the_1_percent_allowed() -> None:
    [refusal] = refusals(
        "svs.tbl", SHA, Counts(99, 0, 1, 0, 0), History(), FeedGuards(max_row_error_share=0.01)
    )
    assert refusal.rule == "row-error-share" and not refusal.approvable
    assert "1 of 99 rows have errors (1.01% > 1.00% allowed)" in refusal.message


@given(st.floats(0, 1), st.floats(0, 1))
def test_shares_are_shown_apart_whenever_they_differ_visibly(share: float, limit: float) -> None:
    shown, allowed = percents(share, limit)
    if abs(share - limit) > 1e-6:
        assert shown != allowed
    if share > limit and shown != allowed:  # never shown in the wrong order
        assert float(shown.rstrip("%")) > float(allowed.rstrip("%"))


LINES = 2_000  # a thousandth of the 2M-line extract


def _day(day: int, first: int) -> list[str]:
    """Record lines ``first`` to ``first + LINES - 1``: each day drops the 6 oldest and
    adds 7 new, about the 0.3 % a day of the pure tests' history."""
    return [ncic_line(f"V{i:09d}", f"7G{i:06d}") for i in range(first, first + LINES + day)]


def _ingest(settings: Settings, drop: Drop, records: list[str], day: int) -> ApplyResult | str:
    drop.put("VEHEXTRT.txt", ncic_file(records, stamp=f"202611{day:02d}0800"))
    try:
        [result] = ingest_source(settings, "ncic")
    except IngestFailed as failed:
        return failed.rejections[0].rule + " " + failed.rejections[0].sha256
    assert isinstance(result, ApplyResult)
    return result


def test_an_extract_cut_by_3_percent_is_refused_at_a_thousandth_of_the_scale(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    """The same shares as the 2M-line case: the guards read only ratios (entries removed
    over the previous version's entries, record lines over the previous file's) and how
    many versions the history holds, so 60 of 2,000 is judged as 60,000 of 2,000,000.

    The cut is refused with the default guards, the previous version stays, an approval
    of that exact file applies it, and the approved removal does not widen the limit:
    the next cut is refused again."""
    settings = make_settings()
    for day in range(1, 6):
        assert isinstance(_ingest(settings, drop, _day(day, 6 * day), day), ApplyResult)
    whole = _day(6, 36)
    cut = whole[: len(whole) - 60]
    refused = _ingest(settings, drop, cut, 6)
    assert isinstance(refused, str) and refused.startswith("removal-above-history ")
    assert len(find_hits(settings.data_dir, "7G002000")) == 1  # a cut record: still listed
    sha = refused.split()[1]
    [approved] = ingest_source(settings, "ncic", approved_sha256=sha)
    assert isinstance(approved, ApplyResult) and approved.removed == 59
    assert find_hits(settings.data_dir, "7G002000") == []
    restored = _ingest(settings, drop, _day(7, 42), 7)
    assert isinstance(restored, ApplyResult)
    again = _day(8, 48)
    refused = _ingest(settings, drop, again[: len(again) - 60], 8)
    assert isinstance(refused, str) and refused.startswith("removal-above-history ")


def test_one_bad_row_in_99_is_refused_with_the_true_shares(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings()
    good = [ncic_line(f"V{i:09d}", f"7H{i:05d}") for i in range(98)]
    bad = ncic_line("V000000999", "7H99999", date="2024XX05")
    drop.put("VEHEXTRT.txt", ncic_file([*good, bad]))
    with pytest.raises(IngestFailed) as failed:
        ingest_source(settings, "ncic")
    [rejection] = failed.value.rejections
    assert rejection.rule == "row-error-share"
    assert "1 of 99 rows have errors (1.01% > 1.00% allowed)" in rejection.message
