"""The verification's cheaper searches find what the plain ones find: number and date
columns searched through their text without writing every value as text, raw bytes of
many files in one pass, files searched on threads with findings in the order of the
walk, the access log in blocks searched several at a time."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotlist import scan, verify_access
from hotlist import verify as verify_module
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.scan import ByteSearch, raw_patterns, scan_table
from hotlist.verify import verify
from hotlist.verify_access import AccessLogSearch
from tests.builders import Drop, ncic_file, ncic_line

PLATE = "ZQXFMT42"


def _as_text_everywhere(frame: pl.DataFrame, markers: pl.Series) -> dict[str, int]:
    """The plain search: every value written as text, compared with every marker."""
    row = frame.select(
        pl.col(c).cast(pl.String).is_in(markers.implode()).sum() for c in frame.columns
    ).row(0, named=True)
    return {c: n for c, n in row.items() if n}


def _found(frame: pl.DataFrame, markers: list[str]) -> dict[str, int]:
    hits = scan_table(frame.lazy(), pl.Series(markers, dtype=pl.String))
    return {column: int(problem.split()[0]) for column, problem in hits}


def test_a_plate_written_in_a_number_or_date_column_is_found_and_counted(
    store: Settings, tmp_path: Path
) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    pl.DataFrame(
        {
            "n": pl.Series([20210, 20210, 7, None], dtype=pl.Int64),
            "year": pl.Series([2021, 1999, 2021, 2021], dtype=pl.Int16),
            "seen": [dt.date(2021, 3, 4), dt.date(2021, 3, 4), dt.date(2020, 1, 1), None],
        }
    ).write_parquet(copies / "copy.parquet")
    markers = ["20210", "2021", "2021-03-04", "020210", "+7", "7 ", "2021-3-4"]
    result = verify(store.data_dir, None, markers, extra_roots=[copies])
    findings = {f.place: f.problem for f in result.findings}
    assert findings == {
        f"{copies / 'copy.parquet'}:n": "2 values hold content of a removed record",
        f"{copies / 'copy.parquet'}:year": "3 values hold content of a removed record",
        f"{copies / 'copy.parquet'}:seen": "2 values hold content of a removed record",
    }


INTEGERS = st.integers(min_value=-40_000, max_value=40_000)
DATES = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))


def _spellings(n: int) -> list[str]:
    return [str(n), f"0{n}", f"+{n}", f" {n}", f"{n}.0", str(-n)]


@settings(max_examples=60, deadline=None)
@given(
    ints=st.lists(st.one_of(INTEGERS, st.none()), min_size=1, max_size=30),
    dates=st.lists(st.one_of(DATES, st.none()), min_size=1, max_size=30),
    picks=st.lists(INTEGERS, max_size=5),
    days=st.lists(DATES, max_size=5),
)
def test_number_and_date_columns_give_the_counts_of_writing_every_value_as_text(
    ints: list[int | None], dates: list[dt.date | None], picks: list[int], days: list[dt.date]
) -> None:
    size = min(len(ints), len(dates))
    frame = pl.DataFrame(
        {
            "i64": pl.Series(ints[:size], dtype=pl.Int64),
            "i16": pl.Series(ints[:size], dtype=pl.Int16, strict=False),
            "u8": pl.Series(
                [None if i is None else abs(i) % 256 for i in ints[:size]], dtype=pl.UInt8
            ),
            "day": pl.Series(dates[:size], dtype=pl.Date),
        }
    )
    present = [str(v) for v in [*ints, *frame["u8"].to_list()] if v is not None]
    markers = sorted(
        {
            *present,
            *(s for n in picks for s in _spellings(n)),
            *(str(d) for d in [*dates, *days] if d is not None),
            *(d.strftime("%Y%m%d") for d in days),
            "ZQXFMT42",
        }
    )
    assert _found(frame, markers) == _as_text_everywhere(frame, pl.Series(markers))


def test_raw_files_searched_together_each_answer_for_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny blocks and batches: a plate cut by a block boundary, files spread over
    several batches, and a file that cannot be read, each answered for itself."""
    monkeypatch.setattr(scan, "BLOCK", 64)
    monkeypatch.setattr(scan, "BATCH", 200)
    search = ByteSearch(raw_patterns([PLATE]))
    cut = tmp_path / "cut.txt"
    cut.write_bytes(b"x" * 60 + PLATE.encode() + b"y" * 300)  # across the 64-byte boundary
    clean = [tmp_path / f"clean{i}.txt" for i in range(4)]
    for path in clean:
        path.write_bytes(b"7KEEP001 " * 40)
    late = tmp_path / "late.txt"
    late.write_bytes(b"z" * 500 + f"seen {PLATE}".encode("utf-16-le"))
    unreadable = tmp_path / "a-directory"
    unreadable.mkdir()
    found = search.files([clean[0], cut, clean[1], unreadable, clean[2], late, clean[3]])
    assert found[:3] + found[4:] == [False, True, False, False, True, False]
    assert isinstance(found[3], OSError)


def test_a_plate_in_a_raw_file_of_many_blocks_is_found(
    store: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "BLOCK", 1024)
    monkeypatch.setattr(scan, "BATCH", 4096)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "old.html").write_bytes(b"<tr><td>7KEEP001</td></tr>\n" * 2000)
    planted = reports / "run.html"
    planted.write_bytes(b"<tr><td>7KEEP001</td></tr>\n" * 1000 + PLATE.encode() + b"\n" * 5000)
    result = verify(store.data_dir, None, [PLATE], extra_roots=[reports])
    assert [(f.place, f.problem) for f in result.findings] == [
        (str(planted), "raw bytes hold content of a removed record")
    ]


def test_findings_come_in_the_order_of_the_walk_whatever_file_is_searched_first(
    store: Settings, tmp_path: Path
) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    frame = pl.DataFrame({"plate": ["7KEEP001", PLATE]})
    frame.write_parquet(copies / "a.parquet")
    (copies / "b.txt").write_text(f"noted {PLATE}\n")
    frame.write_csv(copies / "c.csv")
    pl.DataFrame({"plate": ["7KEEP001"] * 200_000 + [PLATE]}).write_parquet(copies / "d.parquet")
    (copies / "e.txt").write_text(f"noted {PLATE}\n", encoding="utf-16")
    result = verify(store.data_dir, None, [PLATE], extra_roots=[copies])
    assert [f.place for f in result.findings] == [
        f"{copies / 'a.parquet'}:plate",
        str(copies / "b.txt"),
        str(copies / "c.csv"),  # a CSV outside the table roots: its bytes
        f"{copies / 'd.parquet'}:plate",
        str(copies / "e.txt"),
    ]


def _record(seq: int, **fields: object) -> str:
    return json.dumps({"seq": seq, "element": "plate 7KEEP001", **fields}) + "\n"


def test_an_access_log_of_many_blocks_is_searched_line_by_line_where_one_hits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_access, "BLOCK", 256)
    monkeypatch.setattr(verify_access, "BATCH", 1024)
    lines = [_record(i, outcome="granted") for i in range(1, 200)]
    lines[149] = _record(150, outcome=f"hit {PLATE}")
    lines[30] = _record(31, element=f"plate {PLATE}")  # the queried element: lawful
    log = tmp_path / "access.jsonl"
    log.write_text("".join(lines))
    empty = tmp_path / ".append.lock"
    empty.touch()
    search = AccessLogSearch([PLATE], ["F000000042"])
    [(where, problem)] = search.scan(log)
    assert where == "line 150:outcome"
    assert "only the queried element may hold its plate" in problem
    assert search.scan(empty) == []


def test_database_log_records_searched_in_batches_are_named_by_seq_and_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verify_access, "BATCH", 2048)
    records: list[dict[str, object]] = [
        {"seq": i, "element": "plate 7KEEP001", "outcome": "granted"} for i in range(1, 300)
    ]
    records[9] = {"seq": 10, "element": f"plate {PLATE}", "outcome": "granted"}  # lawful
    records[249] = {"seq": 250, "element": "plate 7KEEP001", "hit": {"plates": [PLATE]}}
    records[279] = {"seq": 280, "element": "plate 7KEEP001", "note": "F000000042"}
    search = AccessLogSearch([PLATE], ["F000000042"])
    assert [where for where, _ in search.scan_records(iter(records))] == [
        "record 250:hit.plates[0]",
        "record 280:note",
    ]


def test_a_content_file_holding_a_removed_records_entry_is_named_with_the_count(
    settings: Settings, drop: Drop
) -> None:
    lines = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(30)]
    drop.put("VEHEXTRT.txt", ncic_file(lines, stamp="202611210800"))
    ingest_source(settings, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file(lines[:29], stamp="202611220800"))
    ingest_source(settings, "ncic")
    feeds = settings.data_dir / "store" / "feeds" / "ncic"
    first, second = sorted(feeds.glob("v*.duckdb"))
    result = verify(settings.data_dir, None, [], pending_ok=True)
    findings = {str(f.place): f.problem for f in result.findings}
    # The superseded version still holds the removed entry (the purge erases it); the
    # current one does not.
    assert findings == {str(first): "1 entries of removed records are still in this file"}
    con = duckdb.connect(str(second))
    con.execute("ALTER TABLE entries RENAME TO moved")
    con.close()
    result = verify(settings.data_dir, None, [], pending_ok=True)
    problems = {str(f.place): f.problem for f in result.findings}
    assert problems[str(second)].startswith(
        "unverifiable: its entries cannot be read (CatalogException; the tables it shows: "
    )
    assert "main.moved" in problems[str(second)]


def test_a_content_file_whose_first_read_shows_an_empty_catalog_is_read_again(
    settings: Settings, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What one loaded CI run saw: one read of the current content file found no tables
    (so no ``entries``), where every other read found it whole. The file is read again on
    a connection of its own; the second, complete read verifies it. A file that reads
    wrong twice is still the finding (above)."""
    lines = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(30)]
    for stamp, kept in (("202611210800", lines), ("202611220800", lines[:29])):
        drop.put("VEHEXTRT.txt", ncic_file(kept, stamp=stamp))
        ingest_source(settings, "ncic")
    first, second = sorted((settings.data_dir / "store" / "feeds" / "ncic").glob("v*.duckdb"))
    real = duckdb.connect
    reads: list[str] = []

    def connect(database: str = ":memory:", **kwargs: object) -> duckdb.DuckDBPyConnection:
        reads.append(database)
        if database == str(second) and reads.count(database) == 1:
            return real(":memory:")  # the empty catalog
        return real(database, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(duckdb, "connect", connect)
    result = verify(settings.data_dir, None, [], pending_ok=True, sources=frozenset([first]))
    assert reads.count(str(second)) == 2
    assert result.ok, result.findings
    assert result.duckdb_files == 2  # the content file and the control database, each once


def test_raw_files_of_more_than_a_batch_are_shared_by_the_workers_in_the_walks_order(
    store: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deletion reports accumulate: their bytes are split between the search's threads,
    and each file is still answered for itself, in the order of the walk."""
    monkeypatch.setattr(verify_module, "BATCH", 4096)
    reports = tmp_path / "reports"
    reports.mkdir()
    planted = []
    for i in range(12):
        path = reports / f"deletions-run{i:06d}.html"
        body = b"<tr><td>NIC V000000001</td></tr>\n" * (50 * (i % 4 + 1))
        if i in (2, 7, 11):
            body += f"<td>{PLATE}</td>".encode("utf-16-le" if i == 7 else "utf-8")
            planted.append(str(path))
        path.write_bytes(body)
    shares = verify_module._shares(
        [(p, i, p.stat().st_size) for i, p in enumerate(sorted(reports.iterdir()))]
    )
    assert len(shares) == verify_module.WORKERS
    assert all(group == sorted(group, key=lambda r: r[1]) for group in shares)
    sizes = [sum(size for _, _, size in group) for group in shares]
    assert max(sizes) - min(sizes) <= max(p.stat().st_size for p in reports.iterdir())
    result = verify(store.data_dir, None, [PLATE], extra_roots=[reports])
    assert [f.place for f in result.findings] == planted
