"""The access log keeps the plate that was queried (SB 34), and nothing else of a removed
record: verification is precise about which field may hold a removed plate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hotlist import audit
from hotlist.chance import stands
from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import PurgeIncomplete, purge
from hotlist.scan import MIN_SCAN_LEN
from hotlist.verify_access import AccessLogSearch
from tests.builders import Drop, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]
REMOVED = ncic_line("F000000007", "ZQXLOOK7")


def _config(settings: Settings) -> str:
    return str(settings.data_dir.parent / "hotlist.toml")


def _look_up(settings: Settings, plate: str) -> None:
    done = CliRunner().invoke(
        app,
        [
            *("lookup", plate, "--user", "ofc.lee", "--org", "CA0190000"),
            *("--purpose", "patrol", "-c", _config(settings)),
        ],
    )
    assert done.exit_code == 0, done.stderr


def _remove_upstream(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")


def _access_log(settings: Settings) -> Path:
    return audit.log_path(settings.data_dir)


def test_a_lawful_lookup_of_a_plate_removed_later_does_not_fail_the_purge(
    relaxed: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, REMOVED]))
    ingest_source(relaxed, "ncic")
    _look_up(relaxed, "ZQXLOOK7")
    assert b"ZQXLOOK7" in _access_log(relaxed).read_bytes()  # the law keeps the element
    _remove_upstream(relaxed, drop)
    result = purge(relaxed, None)
    assert result.purged == 1
    assert result.verification.ok, result.verification.findings
    assert result.verification.markers == 1  # the plate was searched for, everywhere
    assert b"ZQXLOOK7" in _access_log(relaxed).read_bytes()  # and the log was not touched


def _plant(settings: Settings, line: bytes, name: str | None = None) -> Path:
    path = settings.data_dir / "audit" / name if name else audit.log_path(settings.data_dir)
    with open(path, "ab") as fh:
        fh.write(line)
    return path


def _record(**fields: object) -> bytes:
    body = {"seq": 99, "user": "ofc.lee", "element": "plate 7KEEP001", "outcome": "granted"}
    return json.dumps({**body, **fields}).encode() + b"\n"


@pytest.mark.parametrize(
    ("line", "where"),
    [
        (_record(outcome="granted: hit ZQXLOOK7 stolen TOYT CAM"), "outcome"),
        (_record(note="NIC F000000007"), "note"),
        (_record(element="nic F000000007"), "element"),  # a NIC is never the queried plate
        (_record(hit={"plate": "ZQXLOOK7"}), "hit.plate"),
    ],
    ids=["plate-in-outcome", "nic-in-note", "nic-in-element", "plate-nested"],
)
def test_a_removed_record_anywhere_else_in_the_access_log_is_a_finding_naming_the_field(
    relaxed: Settings, drop: Drop, line: bytes, where: str
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, REMOVED]))
    ingest_source(relaxed, "ncic")
    _look_up(relaxed, "ZQXLOOK7")
    log = _plant(relaxed, line)
    _remove_upstream(relaxed, drop)
    with pytest.raises(PurgeIncomplete) as failed:
        purge(relaxed, None)
    # A line after the chain's last record is no record of it: the purge first moves it to
    # the segment's evidence file (kept, keyed), and finds the content there.
    evidence = log.with_name(log.name + ".torn")
    places = [f.place for f in failed.value.verification.findings]
    assert places == [f"{evidence}:line 1:fragment"], where


def test_a_foreign_line_is_searched_as_raw_bytes(relaxed: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, REMOVED]))
    ingest_source(relaxed, "ncic")
    _look_up(relaxed, "ZQXLOOK7")
    segment = _plant(relaxed, b"ZQXLOOK7 written by something else\n", "access-2026-11.jsonl.1")
    _remove_upstream(relaxed, drop)
    with pytest.raises(PurgeIncomplete) as failed:
        purge(relaxed, None)
    assert {f.place for f in failed.value.verification.findings} == {f"{segment}:line 1"}


def test_a_torn_lookup_record_is_kept_as_evidence_and_does_not_fail_the_purge(
    relaxed: Settings, drop: Drop
) -> None:
    """A crash mid-append tore a lookup's record: the purge moves the tail to its evidence
    file first, where the queried plate stands in its own field, the one the law keeps."""
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, REMOVED]))
    ingest_source(relaxed, "ncic")
    _look_up(relaxed, "ZQXLOOK7")
    log = _plant(relaxed, b'{"channel":"cli","client":"","data_element":"plate ZQXLOOK7","outc')
    _remove_upstream(relaxed, drop)
    result = purge(relaxed, None)
    assert result.verification.ok, result.verification.findings
    assert result.verification.markers == 1
    evidence = log.with_name(log.name + ".torn")
    assert b"ZQXLOOK7" in evidence.read_bytes()  # kept, as the law wants the element kept
    assert audit.verify_chain(relaxed.data_dir).ok


def test_a_torn_record_holding_more_of_a_removed_record_is_a_finding(
    relaxed: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, REMOVED]))
    ingest_source(relaxed, "ncic")
    _look_up(relaxed, "ZQXLOOK7")
    log = _plant(relaxed, b'{"data_element":"plate 7KEEP001","outcome":"hit F000000007 ZQXLO')
    _remove_upstream(relaxed, drop)
    with pytest.raises(PurgeIncomplete) as failed:
        purge(relaxed, None)
    evidence = log.with_name(log.name + ".torn")
    assert [f.place.split(":line")[0] for f in failed.value.verification.findings] == [
        str(evidence)
    ]


PLATES = st.text(alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=2, max_size=8)


@given(plate=PLATES, other=st.sampled_from(["outcome", "client", "purpose", "user"]))
def test_only_the_queried_field_may_hold_a_removed_plate(
    plate: str, other: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    search = AccessLogSearch([plate], ["F000000007"])
    path = tmp_path_factory.mktemp("log") / "access.jsonl"
    lawful = {"seq": 1, "element": f"plate {plate} state CA", "outcome": "granted: 1 hits"}
    path.write_text(json.dumps(lawful) + "\n" + json.dumps({"seq": 2, other: plate}) + "\n")
    assert [where for where, _ in search.scan(path)] == [f"line 2:{other}"]


_TEXT = st.text('AB7890 ._-"', max_size=24)


@given(
    markers=st.lists(st.text("AB7890", min_size=1, max_size=8), max_size=12),
    text=_TEXT,
)
def test_a_field_is_judged_by_the_markers_it_holds_as_by_trying_every_marker(
    markers: list[str], text: str
) -> None:
    """Looking up what a field holds (not the field by every marker, which took hours on a
    log where removed plates had been queried) gives the same answer as trying each."""
    search = AccessLogSearch(markers, [])
    tried = any(m == text or (len(m) >= MIN_SCAN_LEN and stands(text, m)) for m in markers)
    assert search._holds(text, search._plate_set) == tried


def test_lines_where_removed_plates_were_queried_many_times_are_judged_each_by_its_fields(
    tmp_path: Path,
) -> None:
    """Thousands of lawful lines (a removed plate queried) among thousands of markers: each
    line hits the raw search and is judged by its fields; only the unlawful one is named."""
    plates = [f"ZQ{i:05d}" for i in range(4000)]
    lines = [
        {"seq": i, "data_element": f"plate {plates[i % 4000]} state CA", "outcome": "granted"}
        for i in range(8000)
    ]
    lines.append({"seq": 8000, "data_element": "plate 7KEEP001", "outcome": f"hit {plates[7]}"})
    log = tmp_path / "access-2026-12.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))
    search = AccessLogSearch(plates + [f"ZX{i:05d}" for i in range(12000)], [])
    assert search.scan(log) == [
        (
            "line 8001:outcome",
            "holds content of a removed record (only the queried element may hold its plate)",
        )
    ]


def test_a_removed_digit_plate_equal_to_a_records_sequence_number_is_that_number(
    tmp_path: Path,
) -> None:
    """Once the log holds 12,345 records, a removed plate 12345 is in its raw bytes: as
    the sequence number of one of them, which is no content. Written as a number in any
    other field, it is a plate written as a number: named."""
    log = tmp_path / "access-2026-12.jsonl"
    records = [
        {"seq": 12345, "data_element": "plate 7KEEP001", "outcome": "granted"},
        {"seq": 12346, "data_element": "plate 7KEEP001", "outcome": "granted", "hits": 12345},
        {"seq": 12347, "data_element": "plate 7KEEP001", "took_s": 0.12345},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    search = AccessLogSearch(["12345"], [])
    assert [where for where, _ in search.scan(log)] == ["line 2:hits"]
    assert [where for where, _ in search.scan_records(records)] == ["record 12346:hits"]


def test_a_removed_plate_equal_to_the_day_and_hour_of_an_access_time_is_that_time(
    tmp_path: Path,
) -> None:
    """Every record's time, ``2026-12-04T14:47:02.007976+00:00``, holds ``04T14`` where a
    plate could stand: in the time field, as the log writes it, it is a day and an hour.
    The same text in any other field, or a time field not written as a time, is named."""
    log = tmp_path / "access-2026-12.jsonl"
    records = [
        {"seq": 1, "time": "2026-12-04T14:47:02.007976+00:00", "data_element": "plate 7KEEP001"},
        {"seq": 2, "time": "2026-12-04T14:48:00Z", "data_element": "plate 7KEEP001"},
        {"seq": 3, "time": "2026-12-04T14:49:00Z", "user": "2026-12-04T14:49:00Z"},
        {"seq": 4, "time": "04T14", "data_element": "plate 7KEEP001"},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    search = AccessLogSearch(["04T14"], [])
    assert [where for where, _ in search.scan(log)] == ["line 3:user", "line 4:time"]
    assert [where for where, _ in search.scan_records(records)] == [
        "record 3:user",
        "record 4:time",
    ]


def test_a_removed_digit_plate_written_as_a_negative_number_is_named() -> None:
    """A number is judged by its digits: ``-4417712`` in a field other than the sequence
    number is the plate 4417712 written as a number, named as any other."""
    search = AccessLogSearch(["4417712"], [])
    record = {"seq": 1, "data_element": "plate 7KEEP001", "n": -4417712}
    assert [where for where, _ in search.scan_records([record])] == ["record 1:n"]


def test_a_digit_plate_inside_the_chains_hmac_is_no_finding_but_any_other_marker_is() -> None:
    """The chain's HMACs are lowercase hexadecimal: a removed plate of digits inside one
    always has a digit or a hexadecimal letter beside it (the chance rule), and no plate
    with an uppercase letter can occur in one. A marker with a lowercase letter (none is,
    but the search does not assume it) is still found there."""
    hmac = "0a1b2c3d" + "4417712" + "e" * 49
    record = {"seq": 7, "hash": hmac, "data_element": "plate 7KEEP001"}
    assert AccessLogSearch(["4417712"], []).scan_records([record]) == []
    assert [w for w, _ in AccessLogSearch(["b2c3d4417"], []).scan_records([record])] == []
    assert [w for w, _ in AccessLogSearch(["d4417712e"], []).scan_records([record])] == [
        "record 7:hash"
    ]
