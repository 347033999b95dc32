"""The sample-data generator: byte-exact layouts, determinism, and the day-2 differences.

Every check here reads the files with the offsets of docs/formats.md written out below, not
with the project's parser, so a parser bug and a writer bug cannot cancel out.
"""

from __future__ import annotations

import csv
import re
import tempfile
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotlist.samples import (
    BAD_FILE,
    NCIC_FILE,
    SVS_FILES,
    ClewRecord,
    DemoDays,
    NcicRecord,
    generate_clew,
    generate_ncic,
    write_bench_dataset,
    write_clew,
    write_demo_days,
    write_ncic,
)
from hotlist.samples.generate import hash_expr, mix64, stream_key

CODES = Path(__file__).parent.parent / "contracts" / "codes"

# docs/formats.md section 1 and 2, 0-based, end exclusive (None: to the end of the line)
CLEW_OFFSETS: dict[str, tuple[int, int | None]] = {
    "plate": (0, 8),
    "state": (8, 10),
    "county": (10, 12),
    "loss_date": (12, 20),
}
NCIC_OFFSETS: dict[str, tuple[int, int | None]] = {
    "nic": (0, 10),
    "ori": (10, 19),
    "record_date": (19, 27),
    "plate": (27, 37),
    "state": (37, 39),
    "plate_year": (39, 43),
    "plate_type": (43, 45),
    "vehicle_year": (45, 49),
    "make": (49, 53),
    "model": (53, 56),
    "style": (56, 58),
    "colour": (58, None),
}
NCIC_CSV_FIELDS = list(NCIC_OFFSETS)
CLEW_HEADER = re.compile(r"^DATE(\d{2}/\d{2}/\d{4} \d{2}:\d{2})$")
CLEW_TRAILER = re.compile(r"^TOTAL RECORD (\d{7})$")
NCIC_HEADER = re.compile(r"^NCIC LPR EXTRACT (\d{12})$")
NOT_HITS = {"", "NONE", "UNK", "UNKNOWN", "0", "00", "000", "190"}
Identity = tuple[str, str, str]


def codes(table: str) -> set[str]:
    with (CODES / f"{table}.csv").open() as fh:
        return {row["code"] for row in csv.DictReader(fh)}


def norm_plate(raw: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", raw.upper())


def norm_state(raw: str) -> str:
    code = raw.strip().upper().replace("0", "O")
    return {"PQ": "QC", "NF": "NL"}.get(code, code)


def read_lines(path: Path, newline: str) -> list[str]:
    """The file's lines; every line, the last included, ends with ``newline``."""
    text = path.read_bytes().decode("ascii")
    assert text.endswith(newline)
    lines = text[: -len(newline)].split(newline)
    if newline == "\n":
        assert not any(line.endswith("\r") for line in lines)
    return lines


def cut(line: str, offsets: dict[str, tuple[int, int | None]]) -> dict[str, str]:
    return {name: line[start:end].rstrip(" ") for name, (start, end) in offsets.items()}


def ccyymmdd(text: str) -> date:
    assert re.fullmatch(r"\d{8}", text), text
    return datetime.strptime(text, "%Y%m%d").date()


def clew_table(path: Path, newline: str = "\r\n") -> tuple[datetime, list[dict[str, str]], int]:
    """Header time, records (fields by docs/formats.md offsets), trailer count; checks shapes."""
    header, *records, trailer = read_lines(path, newline)
    header_match, trailer_match = CLEW_HEADER.match(header), CLEW_TRAILER.match(trailer)
    assert header_match and trailer_match, (header, trailer)
    when = datetime.strptime(header_match[1], "%m/%d/%Y %H:%M")
    states = codes("states") | {"0H", "PQ", "NF"}
    fields = []
    for line in records:
        assert len(line) == 20, line
        f = cut(line, CLEW_OFFSETS)
        assert re.fullmatch(r"[A-Za-z0-9 .\-]{1,8}", f["plate"]), line
        assert f["state"] in states, line
        assert f["county"] in codes("counties"), line
        assert ccyymmdd(f["loss_date"]) <= when.date(), line
        fields.append(f)
    return when, fields, int(trailer_match[1])


def check_ncic_fields(f: dict[str, str], when: datetime, line: str) -> None:
    assert re.fullmatch(r"[A-Z][0-9]{9}", f["nic"]), line
    assert re.fullmatch(r"[A-Z0-9]{9}", f["ori"]), line
    assert ccyymmdd(f["record_date"]) <= when.date(), line
    assert re.fullmatch(r"[A-Za-z0-9 .\-]{1,10}", f["plate"]), line
    assert f["state"] in codes("states") | {"0H", "PQ", "NF"}, line
    assert re.fullmatch(r"(\d{4})?", f["plate_year"]), line
    assert re.fullmatch(r"[A-Z0-9]{2}", f["plate_type"]), line
    assert re.fullmatch(r"(\d{4})?", f["vehicle_year"]), line
    assert re.fullmatch(r"[A-Z0-9]{2,4}", f["make"]), line
    assert re.fullmatch(r"([A-Z0-9]{3})?", f["model"]), line
    assert re.fullmatch(r"[A-Z0-9]{2}", f["style"]), line
    assert re.fullmatch(r"[A-Z]{3}(/[A-Z]{3})?", f["colour"]), line


def ncic_extract(path: Path, layout: str = "ncic-fixed") -> tuple[datetime, list[dict[str, str]]]:
    header, *records = read_lines(path, "\n")
    header_match = NCIC_HEADER.match(header)
    assert header_match, header
    when = datetime.strptime(header_match[1], "%Y%m%d%H%M")
    fields = []
    for line in records:
        if layout == "ncic-csv":
            values = line.split(",")
            assert len(values) == 12, line
            f = dict(zip(NCIC_CSV_FIELDS, values, strict=True))
        else:
            assert len(line) in (61, 65), line  # colour of 3 or 7 characters
            assert line[:58] == line[:58].ljust(58), line
            f = cut(line, NCIC_OFFSETS)
        check_ncic_fields(f, when, line)
        fields.append(f)
    return when, fields


def svs_content(day: Path, names: list[str]) -> dict[Identity, tuple[str, ...]]:
    out: dict[Identity, tuple[str, ...]] = {}
    for name in names:
        for f in clew_table(day / name)[1]:
            out[(SVS_FILES[name], norm_plate(f["plate"]), norm_state(f["state"]))] = tuple(
                f.values()
            )
    return out


def ncic_content(path: Path, layout: str = "ncic-fixed") -> dict[Identity, tuple[str, ...]]:
    records = ncic_extract(path, layout)[1]
    out = {
        (f["nic"], norm_plate(f["plate"]), norm_state(f["state"])): tuple(f.values())
        for f in records
    }
    assert len(out) == len(records), "identities are distinct"
    return out


def diff(
    before: dict[Identity, tuple[str, ...]], after: dict[Identity, tuple[str, ...]]
) -> tuple[set[Identity], set[Identity], set[Identity]]:
    changed = {i for i in before.keys() & after.keys() if before[i] != after[i]}
    return before.keys() - after.keys(), after.keys() - before.keys(), changed


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDays:
    return write_demo_days(tmp_path_factory.mktemp("demo"))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --- the reference examples of docs/formats.md -----------------------------------------------


def test_writers_reproduce_the_examples_of_formats_md(tmp_path: Path) -> None:
    write_clew(
        tmp_path / "svs.tbl",
        [("ABC1234", "CA", "12", date(2019, 5, 15))],
        datetime(2018, 7, 2, 9, 0),
        trailer_count=72,
    )
    assert (tmp_path / "svs.tbl").read_bytes() == (
        b"DATE07/02/2018 09:00\nABC1234 CA1220190515\nTOTAL RECORD 0000072\n"
    )
    yamaha = NcicRecord(
        nic="V123456789",
        ori="LA0570200",
        record_date=date(2019, 5, 9),
        plate="AB123456",
        state="CA",
        plate_year=2009,
        plate_type="MC",
        vehicle_year=2009,
        make="YAMA",
        model="CYL",
        style="MC",
        colour="BLK",
    )
    write_ncic(tmp_path / "VEHEXTRT.txt", [yamaha], datetime(2026, 11, 22, 8, 0))
    assert (tmp_path / "VEHEXTRT.txt").read_text() == (
        "NCIC LPR EXTRACT 202611220800\n"
        "V123456789LA057020020190509AB123456  CA2009MC2009YAMACYLMCBLK\n"
    )
    chevy = NcicRecord(
        "C845996328", "0H0671200", date(2021, 11, 22), "JFJ4764", "0H", 2022, "TK", 2013,
        "CHEV", "AVA", "PK", "CRM",
    )  # fmt: skip
    write_ncic(tmp_path / "v.csv", [chevy], datetime(2026, 11, 22, 8, 0), layout="ncic-csv")
    assert (tmp_path / "v.csv").read_text().splitlines()[1] == (
        "C845996328,0H0671200,20211122,JFJ4764,0H,2022,TK,2013,CHEV,AVA,PK,CRM"
    )


def test_blank_years_and_model_stay_blank_at_their_offsets(tmp_path: Path) -> None:
    record = NcicRecord(
        "V000000001", "CA0190000", date(2024, 1, 5), "7ABC123", "CA", None, "PC", None,
        "ACUR", "", "4D", "BLK/WHI",
    )  # fmt: skip
    write_ncic(tmp_path / "x.txt", [record], datetime(2026, 1, 1))
    line = (tmp_path / "x.txt").read_text().splitlines()[1]
    assert line == "V000000001CA019000020240105" + "7ABC123   CA    PC    ACUR   4DBLK/WHI"


@pytest.mark.parametrize(
    ("plate", "message"),
    [("ABCDEFGHJ", "plate is wider than 8"), ("7ABC\n12", "printable ASCII")],
)
def test_writer_refuses_values_that_would_shift_fields(
    tmp_path: Path, plate: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write_clew(
            tmp_path / "x.tbl",
            [ClewRecord(plate, "CA", "19", date(2024, 1, 1))],
            datetime(2026, 1, 1),
        )


def test_csv_writer_refuses_a_comma(tmp_path: Path) -> None:
    record = generate_ncic(1, 1, datetime(2026, 1, 1))[0]
    bad = replace(record, plate="AB,12")
    with pytest.raises(ValueError, match="plate holds ','"):
        write_ncic(tmp_path / "x.csv", [bad], datetime(2026, 1, 1), layout="ncic-csv")


# --- the demo days ----------------------------------------------------------------------


def test_demo_days_are_byte_identical_for_a_seed(tmp_path: Path) -> None:
    first = write_demo_days(tmp_path / "a", seed=11)
    second = write_demo_days(tmp_path / "b", seed=11)
    other = write_demo_days(tmp_path / "c", seed=12)
    assert tree_bytes(first.root) == tree_bytes(second.root)
    assert tree_bytes(first.root) != tree_bytes(other.root)
    assert sorted(tree_bytes(first.root)) == [
        f"{day}/{name}" for day in ("day1", "day2") for name in sorted([NCIC_FILE, *SVS_FILES])
    ]


def test_clew_tables_have_fields_at_their_offsets_and_a_true_trailer(demo: DemoDays) -> None:
    for day, when in ((demo.day1, demo.day1_time), (demo.day2, demo.day2_time)):
        for name in SVS_FILES:
            header_time, records, trailer = clew_table(day / name)
            assert header_time == when
            if day / name == demo.bad_file:
                assert trailer != len(records)
            else:
                assert trailer == len(records)
            written = demo.clew_records[day.name][name]
            assert [
                (f["plate"], f["state"], f["county"], ccyymmdd(f["loss_date"])) for f in records
            ] == [(r.plate, r.state, r.county, r.loss_date) for r in written]
    assert demo.bad_file == demo.day2 / BAD_FILE
    assert 90 <= len(demo.clew_records["day1"]["svs.tbl"]) <= 110
    assert 15 <= len(demo.clew_records["day1"]["sfr.tbl"]) <= 25
    assert 40 <= len(demo.clew_records["day1"]["slr.tbl"]) <= 60


def test_ncic_extract_has_fields_at_their_offsets(demo: DemoDays) -> None:
    for day, when in ((demo.day1, demo.day1_time), (demo.day2, demo.day2_time)):
        header_time, records = ncic_extract(day / NCIC_FILE)
        assert header_time == when
        written = demo.ncic_records[day.name]
        assert [f["nic"] for f in records] == [r.nic for r in written]
        assert [f["plate"] for f in records] == [r.plate for r in written]
        assert [f["colour"] for f in records] == [r.colour for r in written]
        assert [f["record_date"] for f in records] == [
            r.record_date.strftime("%Y%m%d") for r in written
        ]
        assert 250 <= len(records) <= 350
    assert demo.day2_time > demo.day1_time


def test_ncic_csv_variant_holds_the_same_records(tmp_path: Path, demo: DemoDays) -> None:
    csv_days = write_demo_days(tmp_path, seed=demo.seed, ncic_layout="ncic-csv")
    for day in ("day1", "day2"):
        fixed = ncic_content(demo.root / day / NCIC_FILE)
        as_csv = ncic_content(csv_days.root / day / NCIC_FILE, "ncic-csv")
        assert fixed == as_csv
        assert (csv_days.root / day / "svs.tbl").read_bytes() == (
            demo.root / day / "svs.tbl"
        ).read_bytes()


def test_day2_differs_from_day1_exactly_by_the_recorded_changes(demo: DemoDays) -> None:
    applied = [n for n in SVS_FILES if n != BAD_FILE]
    removed, added, changed = diff(svs_content(demo.day1, applied), svs_content(demo.day2, applied))
    assert removed == demo.svs.identities("removed")
    assert added == demo.svs.identities("added")
    assert changed == demo.svs.identities("changed")

    removed, added, changed = diff(
        svs_content(demo.day1, [BAD_FILE]), svs_content(demo.day2, [BAD_FILE])
    )
    bad = demo.bad_file_changes
    assert removed == bad.identities("removed")
    assert added == bad.identities("added")
    assert changed == bad.identities("changed")
    assert added and changed, "the rejected file would change something"

    removed, added, changed = diff(
        ncic_content(demo.day1 / NCIC_FILE), ncic_content(demo.day2 / NCIC_FILE)
    )
    assert removed == demo.ncic.identities("removed")
    assert added == demo.ncic.identities("added")
    assert changed == demo.ncic.identities("changed")
    for feed in (demo.svs, demo.ncic):
        assert all(feed.identities(w) for w in ("removed", "added", "changed"))


def test_changes_are_hits_of_default_hit_types_and_show_raw_plates(demo: DemoDays) -> None:
    for which in ("removed", "added", "changed"):
        for nic, plate, _ in demo.ncic.identities(which):
            assert nic[0] in "VPFRAM" and plate not in NOT_HITS
        for _, plate, _ in demo.svs.identities(which):
            assert plate not in NOT_HITS
    raw_changed = {plate for _, plate, _ in demo.ncic.identities("changed", raw=True)}
    raw_changed |= {plate for _, plate, _ in demo.svs.identities("changed", raw=True)}
    assert any(plate != norm_plate(plate) for plate in raw_changed)
    nics = {nic for nic, _, _ in demo.ncic.identities("removed")}
    day2_nics = {r.nic for r in demo.ncic_records["day2"]}
    assert nics & day2_nics, "one supplemental line goes while its NIC stays"
    assert nics - day2_nics, "whole NICs go"


def test_marker_plates_are_on_day1_only(demo: DemoDays) -> None:
    assert len(demo.marker_plates) >= 3
    for marker in demo.marker_plates:
        on_day1 = [p.name for p in demo.day1.iterdir() if marker.encode() in p.read_bytes()]
        assert on_day1 and BAD_FILE not in on_day1, marker
        assert not any(marker.encode() in p.read_bytes() for p in demo.day2.iterdir()), marker
    removed = {
        plate for feed in (demo.svs, demo.ncic) for _, plate, _ in feed.identities("removed")
    }
    assert demo.marker_plates <= removed


def test_day1_holds_every_special_case(demo: DemoDays) -> None:
    lines = demo.ncic_records["day1"]
    hit_types = {r.hit_type for r in lines}
    assert set("VPFRAMWN") <= hit_types
    assert demo.immigration_nics == {
        r.nic for d in demo.ncic_records.values() for r in d if r.hit_type == "N"
    }
    assert len({r.nic for r in lines if r.hit_type == "N"}) >= 3
    models = {(row["make"], row["code"]) for row in csv.DictReader((CODES / "models.csv").open())}
    assert any(r.make not in codes("makes") and r.make != "D0DG" for r in lines)
    assert any(
        r.model and r.make in codes("makes") and (r.make, r.model) not in models for r in lines
    )
    assert any(r.style not in codes("styles") for r in lines)
    assert any(not set(r.colour.split("/")) <= codes("colours") for r in lines)
    assert any("/" in r.colour for r in lines)
    unknown = [
        r
        for r in lines
        if r.make not in codes("makes") | {"D0DG"} or r.style not in codes("styles")
    ]
    assert len(unknown) < len(lines) * 0.05
    assert {"0H", "PQ", "NF"} <= {r.state for r in lines}
    assert "D0DG" in {r.make for r in lines} and "C0" in {r.plate_type for r in lines}
    nic_lines = [r.nic for r in lines]
    assert any(nic_lines.count(nic) == 2 for nic in nic_lines)
    clew = [r for records in demo.clew_records["day1"].values() for r in records]
    assert demo.not_hit_plates == {"NONE", "UNK", "000"}
    for junk in demo.not_hit_plates:
        assert junk in {r.plate for r in lines} | {r.plate for r in clew}
    assert "0H" in {r.state for r in clew} and "PQ" in {r.state for r in clew}
    assert sum(r.state == "CA" for r in clew) > len(clew) * 0.6
    assert sum(r.state == "CA" for r in lines) > len(lines) * 0.3


def test_demo_days_refuse_a_day2_that_is_not_later(tmp_path: Path) -> None:
    t = datetime(2026, 1, 1, 8, 0)
    with pytest.raises(ValueError, match="later"):
        write_demo_days(tmp_path, day1_time=t, day2_time=t)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**63))
def test_any_seed_yields_well_formed_demo_days(seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        days = write_demo_days(Path(tmp), seed=seed)
        for day in (days.day1, days.day2):
            for name in SVS_FILES:
                _, records, trailer = clew_table(day / name)
                assert (trailer == len(records)) == (day / name != days.bad_file)
            ncic_content(day / NCIC_FILE)
        assert days.marker_plates <= {
            p for f in (days.svs, days.ncic) for _, p, _ in f.identities("removed")
        }
        assert_day2_passes_the_mass_deletion_guard(days)


def assert_day2_passes_the_mass_deletion_guard(days: DemoDays) -> None:
    """Each file that applies removes less than 5 % (the default share) of its hits."""
    for name in [*(n for n in SVS_FILES if n != BAD_FILE), NCIC_FILE]:
        if name == NCIC_FILE:
            hits = {i for i in ncic_content(days.day1 / name) if i[0][0] in "VPFRAM"}
            removed = set(days.ncic.identities("removed"))
        else:
            hits = set(svs_content(days.day1, [name]))
            removed = {i for i in days.svs.identities("removed") if i[0] == SVS_FILES[name]}
        hits = {i for i in hits if i[1] not in NOT_HITS}
        assert removed <= hits
        assert len(removed) < 0.05 * len(hits), name


def test_day2_passes_the_default_mass_deletion_guard(demo: DemoDays) -> None:
    assert_day2_passes_the_mass_deletion_guard(demo)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**64 - 1),
    rows=st.integers(min_value=0, max_value=40),
    when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
)
def test_generated_records_are_well_formed_for_any_seed(
    seed: int, rows: int, when: datetime
) -> None:
    when = when.replace(second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x"
        write_ncic(path, generate_ncic(rows, seed, when), when)
        header_time, records = ncic_extract(path)
        assert header_time == when and len(records) == rows
        write_clew(path, generate_clew("stolen_plate", rows, seed, when), when, newline="\r\n")
        assert clew_table(path)[0] == when
        assert clew_table(path)[2] == len(clew_table(path)[1]) == rows
        write_clew(path, generate_clew("felony_vehicle", rows, seed, when), when)
        assert clew_table(path, "\n")[2] == rows


def test_hash_is_the_reference_splitmix64() -> None:
    ids = [0, 1, 2, 2**32, 2**63 + 5, 2**64 - 1]
    key = stream_key(5, "x")
    frame = pl.DataFrame({"id": pl.Series(ids, dtype=pl.UInt64)})
    expected = [mix64(i * 0x9E3779B97F4A7C15 + key) for i in ids]
    assert frame.select(hash_expr("id", key)).to_series().to_list() == expected


# --- the bench dataset ------------------------------------------------------------------


def test_bench_dataset_has_the_requested_rows_and_one_percent_changes(tmp_path: Path) -> None:
    sizes = {NCIC_FILE: 10_000, "svs.tbl": 3_000, "sfr.tbl": 200, "slr.tbl": 1_000}
    bench = write_bench_dataset(
        tmp_path / "a",
        ncic_rows=sizes[NCIC_FILE],
        svs_rows=sizes["svs.tbl"],
        sfr_rows=sizes["sfr.tbl"],
        slr_rows=sizes["slr.tbl"],
        seed=3,
    )
    assert bench.day1_rows == sizes == bench.day2_rows
    t1, one = ncic_extract(bench.day1 / NCIC_FILE)
    t2, two = ncic_extract(bench.day2 / NCIC_FILE)
    assert (t1, t2) == (bench.day1_time, bench.day2_time) and t2 > t1
    before, after = ncic_content(bench.day1 / NCIC_FILE), ncic_content(bench.day2 / NCIC_FILE)
    removed, added, changed = diff(before, after)
    assert (len(removed), len(added), changed) == (100, 100, set())
    assert bench.removed[NCIC_FILE] == bench.added[NCIC_FILE] == 100
    assert {f["nic"][0] for f in one} >= set("VPFRAMWN")
    for name, list_name in SVS_FILES.items():
        before = svs_content(bench.day1, [name])
        after = svs_content(bench.day2, [name])
        assert len(before) == len(after) == sizes[name], "identities are distinct"
        removed, added, changed = diff(before, after)
        share = round(sizes[name] * 0.01)
        assert (len(removed), len(added), changed) == (share, share, set()), list_name
        assert bench.removed[name] == bench.added[name] == share
    again = write_bench_dataset(
        tmp_path / "b",
        ncic_rows=sizes[NCIC_FILE],
        svs_rows=sizes["svs.tbl"],
        sfr_rows=sizes["sfr.tbl"],
        slr_rows=sizes["slr.tbl"],
        seed=3,
    )
    assert tree_bytes(bench.root) == tree_bytes(again.root)
    assert len(two) == len(one)


def test_bench_day1_is_a_prefix_of_a_larger_universe(tmp_path: Path) -> None:
    small = write_bench_dataset(
        tmp_path / "s", ncic_rows=500, svs_rows=10, sfr_rows=10, slr_rows=10
    )
    large = write_bench_dataset(
        tmp_path / "l", ncic_rows=1_000, svs_rows=10, sfr_rows=10, slr_rows=10
    )
    first = read_lines(small.day1 / NCIC_FILE, "\n")[1:]
    assert read_lines(large.day1 / NCIC_FILE, "\n")[1 : len(first) + 1] == first
