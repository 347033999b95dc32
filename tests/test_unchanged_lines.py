"""A line that stands unchanged in the next file is copied from the current version, not
parsed again: the store must be exactly what parsing every line gives."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotlist import parse
from hotlist.config import Settings, load_settings
from hotlist.ingest import IngestFailed, ingest_source
from hotlist.parse import Snapshot
from hotlist.purge import manual_purge
from hotlist.store import control, control_path
from hotlist.store.apply import ApplyResult
from hotlist.store.state import read_state
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line
from tests.test_parse_properties import ncic_record

DAY1 = [
    ncic_line("V000000001", "7ABC123"),
    ncic_line("V000000002", "8XYZ999", "NV", make="RIVN"),  # an unknown make: a warning
    ncic_line("P000000003", "4PLT444"),
    ncic_line("N000000005", "6IMM666"),  # immigration violator: never loaded
    ncic_line("V000000011", "7BAD777", date="2024XX05"),  # a row error
    ncic_line("F000000004", "5FEL555"),
]


def _store(root: Path) -> tuple[Settings, Drop]:
    drop = Drop(root / "drop")
    guards = "guards = {max_removal_share = 1.0, max_row_error_share = 1.0}\n"
    (root / "hotlist.toml").write_text(
        f'data_dir = "data"\n[sources.svs]\nurl = "file://{drop.root}"\n{guards}'
        f'[sources.ncic]\nurl = "file://{drop.root}"\n{guards}'
    )
    return load_settings(root / "hotlist.toml", environ={}), drop


def _ingest(store: Settings, drop: Drop, records: list[str], stamp: str) -> ApplyResult | str:
    drop.put("VEHEXTRT.txt", ncic_file(records, stamp))
    try:
        [result] = ingest_source(store, "ncic")
    except IngestFailed as failed:
        return failed.rejections[0].rule
    assert isinstance(result, ApplyResult)
    return result


@contextmanager
def _another_parser() -> Iterator[None]:
    """Files written meanwhile are marked as parsed by another parser: the next file is
    then parsed whole."""
    with mock.patch.object(Snapshot, "parser", property(lambda self: "another parser")):
        yield


def _rows(path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _content(store: Settings, feed: str = "ncic") -> dict[str, list[tuple[Any, ...]]]:
    """Everything the feed's current version and its file event hold, in a stable order."""
    data_dir = store.data_dir
    path = data_dir / read_state(data_dir)["feeds"][feed]["content_file"]
    return {
        "entries": _rows(path, "SELECT * FROM entries ORDER BY line_no NULLS LAST, entry_id"),
        "quarantine": _rows(path, "SELECT * FROM quarantine ORDER BY line_no"),
        "warnings": _rows(path, "SELECT * FROM warnings ORDER BY ALL"),
        "issues": _rows(
            control_path(data_dir),
            "SELECT line_no, field, rule, severity FROM file_issues WHERE event_id ="
            " (SELECT max(event_id) FROM file_events WHERE feed = ?) ORDER BY ALL",
            [feed],
        ),
        "event": _rows(
            control_path(data_dir),
            "SELECT verdict, record_lines, row_errors, warnings, excluded FROM file_events"
            " WHERE event_id = (SELECT max(event_id) FROM file_events WHERE feed = ?)",
            [feed],
        ),
    }


def _same_key(source: Settings, target: Settings) -> None:
    """Both stores derive entry ids and line keys from the same local key."""
    secrets = target.data_dir / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    key = secrets / "keyed-hash.key"
    key.write_bytes((source.data_dir / "secrets" / "keyed-hash.key").read_bytes())
    key.chmod(0o600)


def _both_ways(
    root: Path, day1: list[str], day2: list[str]
) -> tuple[ApplyResult | str, ApplyResult | str, Settings, Settings]:
    """Day 1 then day 2 into a store that copies unchanged lines, and into one that parses
    day 2 whole; the second day's results of each."""
    copying, copying_drop = _store(root / "copying")
    parsing, parsing_drop = _store(root / "parsing")
    _ingest(copying, copying_drop, day1, "202611220800")
    _same_key(copying, parsing)
    with _another_parser():
        _ingest(parsing, parsing_drop, day1, "202611220800")
    copied = _ingest(copying, copying_drop, day2, "202611230800")
    parsed = _ingest(parsing, parsing_drop, day2, "202611230800")
    return copied, parsed, copying, parsing


def _without_reuse(result: ApplyResult | str) -> object:
    if isinstance(result, str):
        return result
    return {k: v for k, v in vars(result).items() if k not in ("reused", "version")}


def test_an_unchanged_file_is_copied_whole_and_gives_the_same_store(tmp_path: Path) -> None:
    day2 = [*DAY1, ncic_line("V000000012", "7NEW012")]
    copied, parsed, copying, parsing = _both_ways(tmp_path, DAY1, day2)
    assert isinstance(copied, ApplyResult) and isinstance(parsed, ApplyResult)
    assert copied.reused == 4  # the day-1 entries; the N record and the row error are parsed
    assert parsed.reused == 0
    assert _without_reuse(copied) == _without_reuse(parsed)
    assert _content(copying) == _content(parsing)
    assert ("make", "make.unknown_code", "warning") in {i[1:] for i in _content(copying)["issues"]}


def test_the_issues_listed_are_those_parsing_lists_when_copied_warnings_pass_the_limit(
    tmp_path: Path,
) -> None:
    """The copied lines' warnings stay in DuckDB: a file event lists the first of all the
    issues, parsed and copied, exactly as if every line had been parsed."""
    unknown = [ncic_line(f"V{n:09d}", f"7ABC{n:03d}", make="RIVN") for n in range(1, 5)]
    day2 = [ncic_line("V000000009", "9NEW009", make="RIVN"), *unknown]  # line 1 is parsed
    with mock.patch.object(control, "MAX_ISSUES_PER_FILE", 3):
        copied, parsed, copying, parsing = _both_ways(tmp_path, unknown, day2)
    assert isinstance(copied, ApplyResult) and copied.reused == 4
    assert _without_reuse(copied) == _without_reuse(parsed)
    assert copied.warnings == 5
    assert _content(copying) == _content(parsing)
    assert [i[0] for i in _content(copying)["issues"]] == [2, 3, 4]  # lines, header first
    assert len(_content(copying)["warnings"]) == 5


#: Mostly loadable records (a copy happens only for a line that loaded), with warnings,
#: row errors, excluded hit types, shared identities and, now and then, any text at all.
loadable = st.builds(
    lambda letter, n, plate, state, make, date: ncic_line(
        f"{letter}{n:09d}", plate, state, make=make, date=date
    ),
    st.sampled_from("VVVPFN"),
    st.integers(0, 5),
    st.sampled_from(["7ABC123", "8xyz999", "4PLT-444", "NONE"]),
    st.sampled_from(["CA", "NV", "PQ"]),
    st.sampled_from(["TOYT", "RIVN", "FORD"]),
    st.sampled_from(["20240105", "20240105", "20241340"]),
)
record = st.one_of(loadable, loadable, loadable, ncic_record)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(record, max_size=12), st.data())
def test_copying_unchanged_lines_gives_what_parsing_every_line_gives(
    day1: list[str], data: st.DataObject
) -> None:
    """Whatever day 2 keeps, moves, repeats, drops or adds, across chunk boundaries."""
    kept = st.sampled_from(day1) if day1 else record
    day2 = data.draw(st.lists(st.one_of(kept, kept, record), max_size=16))
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(parse, "CHUNK_LINES", 3):
        copied, parsed, copying, parsing = _both_ways(Path(tmp), day1, day2)
        assert _without_reuse(copied) == _without_reuse(parsed)
        if isinstance(copied, ApplyResult):
            assert _content(copying) == _content(parsing)


def test_the_clew_tables_copy_their_unchanged_lines_too(tmp_path: Path) -> None:
    """CLEW entries have no record id: their identity is list, plate and state."""
    day1 = [clew_line("7ABC123"), clew_line("8XYZ999", "NV"), clew_line("4PLT@44")]
    day2 = [clew_line("8XYZ999", "NV"), clew_line("7ABC123"), clew_line("9NEW001"), day1[2]]
    copying, copying_drop = _store(tmp_path / "copying")
    parsing, parsing_drop = _store(tmp_path / "parsing")

    def ingest(store: Settings, drop: Drop, records: list[str], day: int) -> list[Any]:
        for name in ("svs.tbl", "sfr.tbl", "slr.tbl"):
            drop.put(name, clew_file(records, header=f"DATE11/{day}/2026 08:00"))
        return ingest_source(store, "svs")

    ingest(copying, copying_drop, day1, 22)
    _same_key(copying, parsing)
    with _another_parser():
        ingest(parsing, parsing_drop, day1, 22)
    copied = ingest(copying, copying_drop, day2, 23)
    parsed = ingest(parsing, parsing_drop, day2, 23)
    assert [r.reused for r in copied] == [2, 2, 2]
    assert [_without_reuse(r) for r in copied] == [_without_reuse(r) for r in parsed]
    for feed in ("svs", "sfr", "slr"):
        assert _content(copying, feed) == _content(parsing, feed)


def test_a_file_parsed_by_another_parser_is_parsed_whole(tmp_path: Path) -> None:
    """Changed code tables, layout, hit types or parsing code: nothing is copied."""
    store, drop = _store(tmp_path)
    with _another_parser():
        _ingest(store, drop, DAY1, "202611220800")
    result = _ingest(store, drop, DAY1, "202611230800")
    assert isinstance(result, ApplyResult) and result.reused == 0
    result = _ingest(store, drop, DAY1, "202611240800")
    assert isinstance(result, ApplyResult) and result.reused == 4


def test_the_parser_changes_with_the_configured_hit_types(tmp_path: Path) -> None:
    store, drop = _store(tmp_path)
    _ingest(store, drop, DAY1, "202611220800")
    config = tmp_path / "hotlist.toml"
    config.write_text(config.read_text() + 'hit_types = ["V", "F"]\n')
    narrowed = load_settings(config, environ={})
    result = _ingest(narrowed, drop, DAY1, "202611230800")
    assert isinstance(result, ApplyResult)
    assert result.reused == 0 and result.entries == 3  # the P record is no longer loaded


def test_a_manually_purged_record_is_not_copied_back(tmp_path: Path) -> None:
    store, drop = _store(tmp_path)
    _ingest(store, drop, DAY1, "202611220800")
    manual_purge(store, ["V000000001"], "entered in error", "tester", tmp_path / "prefect")
    result = _ingest(store, drop, DAY1, "202611230800")
    assert isinstance(result, ApplyResult)
    assert result.reused == 3 and result.entries == 3
    assert '"suppressed_manual_purge": 1' in _last_excluded(store)


def test_a_suppressed_record_whose_entry_still_stands_is_not_copied(tmp_path: Path) -> None:
    """A manual purge killed after it recorded the suppression, before it wrote the version
    without the record: the entry is in the current file, and must not be copied on."""
    store, drop = _store(tmp_path)
    _ingest(store, drop, DAY1, "202611220800")
    con = duckdb.connect(str(control_path(store.data_dir)))
    try:
        con.execute(
            "INSERT INTO suppressions VALUES ('V000000001', 'court order', 'tester', now(),"
            " NULL, NULL)"
        )
    finally:
        con.close()
    result = _ingest(store, drop, DAY1, "202611230800")
    assert isinstance(result, ApplyResult)
    assert result.reused == 3 and result.entries == 3 and result.removed == 1
    assert '"suppressed_manual_purge": 1' in _last_excluded(store)
    path = store.data_dir / read_state(store.data_dir)["feeds"]["ncic"]["content_file"]
    assert _rows(path, "SELECT count(*) FROM entries WHERE record_id = 'V000000001'") == [(0,)]


def _last_excluded(store: Settings) -> str:
    [(excluded,)] = _rows(
        control_path(store.data_dir),
        "SELECT excluded FROM file_events ORDER BY event_id DESC LIMIT 1",
    )
    return str(excluded)


def test_a_carried_entry_has_no_line_and_is_parsed_again_when_its_line_returns(
    tmp_path: Path,
) -> None:
    """An entry kept because its line came quarantined stands for no line: when the line
    returns as it was, it is parsed, and the entry gets its line number again."""
    store, drop = _store(tmp_path)
    _ingest(store, drop, DAY1, "202611220800")
    broken = [ncic_line("V000000001", "7ABC123", date="20241340"), *DAY1[1:]]
    carried = _ingest(store, drop, broken, "202611230800")
    assert isinstance(carried, ApplyResult) and carried.carried == 1
    path = store.data_dir / read_state(store.data_dir)["feeds"]["ncic"]["content_file"]
    assert _rows(
        path, "SELECT line_no, line_key_hi FROM entries WHERE record_id = 'V000000001'"
    ) == [(None, None)]
    back = _ingest(store, drop, DAY1, "202611240800")
    assert isinstance(back, ApplyResult) and back.reused == 3 and back.changed == 0
    path = store.data_dir / read_state(store.data_dir)["feeds"]["ncic"]["content_file"]
    assert _rows(path, "SELECT line_no FROM entries WHERE record_id = 'V000000001'") == [(2,)]


def test_a_line_key_is_the_xxh3_128_of_the_line_seeded_from_the_local_key(
    tmp_path: Path,
) -> None:
    """A specified hash, checked against the reference implementation: the keys of a
    store do not change with a library upgrade (an upgrade re-parses all the same)."""
    import hashlib
    import hmac

    import xxhash

    store, drop = _store(tmp_path)
    _ingest(store, drop, DAY1, "202611220800")
    path = store.data_dir / read_state(store.data_dir)["feeds"]["ncic"]["content_file"]
    local = (store.data_dir / "secrets" / "keyed-hash.key").read_bytes()
    seed = int.from_bytes(hmac.new(local, b"line-key", hashlib.sha256).digest()[:8], "big")
    digest = xxhash.xxh3_128_digest(DAY1[0].encode(), seed=seed)
    expected = (
        int.from_bytes(digest[:8], "big", signed=True),
        int.from_bytes(digest[8:], "big", signed=True),
    )
    assert _rows(
        path, "SELECT line_key_hi, line_key_lo FROM entries WHERE record_id = 'V000000001'"
    ) == [expected]


def test_the_parser_fingerprint_covers_the_code_that_parses_and_stores_a_line() -> None:
    """A change to any of these files changes the parser, and the next file is parsed
    whole; each must exist (a renamed module would otherwise drop out of the hash)."""
    from hotlist.fingerprint import parser_sources

    sources = parser_sources()
    assert all(path.is_file() for path in sources)
    names = {"/".join(path.parts[-2:]) for path in sources}
    assert {"hotlist/parse.py", "store/chunks.py", "store/stream.py", "contracts/models.py"} <= (
        names
    )


def test_every_module_the_parser_imports_is_in_the_fingerprint() -> None:
    """A module split out of the parser decides how a line is parsed as much as the parser
    does: left out of ``PARSER_MODULES``, a change to it would not change the fingerprint,
    and a line parsed under the old code would be copied as if parsed under the new. Only
    the whole-file checks (they reject a file, they make no entry) and the fingerprint's own
    list are outside it."""
    from hotlist.fingerprint import PARSER_MODULES
    from tests.test_imports import import_graph

    graph = import_graph()
    reached: set[str] = set()
    todo = ["hotlist.parse"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    fingerprinted = {"hotlist." + m.removesuffix(".py").replace("/", ".") for m in PARSER_MODULES}
    outside = {"hotlist.wholefile", "hotlist.fingerprint"}
    assert sorted(reached - outside - fingerprinted) == []
