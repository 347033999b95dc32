"""An occurrence in a SQLite file is Prefect's state type only where it is placed wholly
inside a value of a state-type column (live, or freed and read back as a whole record),
or inside a JSON string under a state key of Prefect's events; a log line, a message, a
value of any other table, stays a finding.

The databases here are real SQLite files, written by SQLite, with the tables and columns
of Prefect's schema that the rule names (and others it does not)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotlist.prefect_words import STATE_TYPES, PrefectStates
from hotlist.scan import ByteSearch, raw_patterns
from hotlist.sqlite_cells import excused, open_database

RULE = PrefectStates()
SCHEMA = """
CREATE TABLE task_run_state (id TEXT PRIMARY KEY, created TEXT, updated TEXT, type TEXT,
    timestamp TEXT, name TEXT, message TEXT);
CREATE INDEX ix_task_run_state__type ON task_run_state (type);
CREATE TABLE log (id TEXT PRIMARY KEY, name TEXT, level INTEGER, message TEXT);
CREATE TABLE events (id TEXT PRIMARY KEY, occurred TEXT, event TEXT, resource TEXT,
    payload TEXT);
CREATE TABLE notes (id TEXT PRIMARY KEY, type TEXT);
"""


def _database(path: Path, wal: bool = False) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA secure_delete = OFF")
    if wal:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA wal_autocheckpoint = 0")
    con.executescript(SCHEMA)
    return con


def _state(con: sqlite3.Connection, i: int, kind: str, message: str = "") -> None:
    con.execute(
        "INSERT INTO task_run_state VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            f"{i:08d}-0000-4000-8000-000000000000",
            "2026-12-04T10:00:00Z",
            "2026-12-04T10:00:00Z",
            kind,
            "2026-12-04T10:00:00Z",
            kind.title(),
            message,
        ),
    )


def _spans(path: Path, word: bytes) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(re.escape(word), path.read_bytes())]


def _judged(path: Path, word: bytes) -> tuple[int, int]:
    """(excused, not excused) occurrences of ``word`` in the file."""
    opened = open_database(path)
    assert opened is not None
    database, in_wal = opened
    spans = _spans(path, word)
    ok = sum(database.excused(in_wal, s, e, RULE) for s, e in spans)
    return ok, len(spans) - ok


def test_state_type_values_and_their_index_are_prefects_words(tmp_path: Path) -> None:
    path = tmp_path / "prefect.db"
    con = _database(path)
    for i in range(50):
        _state(con, i, "RUNNING")
    con.close()
    ok, found = _judged(path, b"RUNNING")
    assert found == 0
    assert ok >= 100, "50 values, their 50 index entries (and the cells a page split left)"
    assert excused(path, _spans(path, b"UNNING"), RULE), "a part of the word: the same value"


def test_a_plate_in_a_message_a_log_line_or_another_table_stays_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "prefect.db"
    con = _database(path)
    _state(con, 1, "RUNNING", message="stopped RUNNING at the gate")
    con.execute("INSERT INTO log VALUES ('a', 'flow', 20, 'RUNNING')")
    con.execute("INSERT INTO notes VALUES ('b', 'RUNNING')")
    _state(con, 2, "RUNNINGX")
    con.close()
    data = path.read_bytes()
    judged = {
        data[start - 8 : end + 8]: excused(path, [(start, end)], RULE)
        for start, end in _spans(path, b"RUNNING")
    }
    findings = [context for context, ok in judged.items() if not ok]
    assert len(judged) == 7 and len(findings) == 5, judged
    for context in findings:  # the message, the log line, notes' "type", the longer value twice
        assert any(w in context for w in (b"stopped", b"\x14", b"b", b"RUNNINGX")), context


def test_deleted_rows_state_types_are_read_back_and_their_messages_stay_findings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "prefect.db"
    con = _database(path)
    for i in range(200):
        _state(con, i, "RUNNING", message=f"plate RUNNING {i}" if i % 10 == 0 else "")
    con.execute("DELETE FROM task_run_state WHERE CAST(substr(id, 1, 8) AS INTEGER) % 2 = 0")
    con.close()
    data = path.read_bytes()
    spans = _spans(path, b"RUNNING")
    messages = [s for s in spans if data[s[0] - 6 : s[0]] == b"plate "]
    assert len(messages) >= 20, "the deleted rows' messages are still in the file"
    for span in messages:
        assert not excused(path, [span], RULE)
    others = [s for s in spans if s not in messages]
    assert len(others) > 200, "deleted state types are still in the file"
    assert excused(path, others, RULE)


def test_the_write_ahead_log_live_and_stale_frames(tmp_path: Path) -> None:
    path = tmp_path / "prefect.db"
    con = _database(path, wal=True)
    for i in range(300):
        _state(con, i, "PENDING", message="PENDING here" if i == 7 else "")
    con.execute("PRAGMA wal_checkpoint(RESTART)")
    _state(con, 1000, "PENDING")  # the log restarts: older frames stay after the new
    wal = tmp_path / "prefect.db-wal"
    held = wal.read_bytes()
    spans = _spans(wal, b"PENDING")
    messages = [s for s in spans if held[s[1] : s[1] + 5] == b" here"]
    assert messages and len(spans) > 300
    assert all(not excused(wal, [span], RULE) for span in messages)
    assert excused(wal, [s for s in spans if s not in messages], RULE)
    con.close()


RUN = '"prefect.resource.id": "prefect.flow-run.5e1d"'


@pytest.mark.parametrize(
    ("event", "payload", "resource", "expected"),
    [
        (
            "prefect.flow-run.Running",
            '{"intended": {"from": "PENDING", "to": "RUNNING"}}',
            "{}",
            [True],
        ),
        (
            "prefect.task-run.Running",
            '{"validated_state": {"type": "RUNNING", "name": "x"}}',
            "{}",
            [True],
        ),
        (
            "prefect.flow-run.Running",
            "{}",
            "{" + RUN + ', "prefect.state-type": "RUNNING"}',
            [True],
        ),
        (
            "prefect.flow-run.Running",
            '{"intended": {"to": "RUNNING"}, "note": "RUNNING"}',
            "{}",
            [True, False],
        ),
        ("prefect.flow-run.Running", '{"to": "RUNNING"}', "{}", [False]),
        ("prefect.flow-run.Running", '{"vehicle": {"type": "RUNNING"}}', "{}", [False]),
        ("hotlist.custom", '{"intended": {"from": "RUNNING"}}', "{}", [False]),
        (
            "prefect.flow-run.Running",
            "{}",
            '{"prefect.resource.id": "x.1", "prefect.state-type": "RUNNING"}',
            [False],
        ),
        ("prefect.flow-run.Running", '{"message": "RUNNING"}', "{}", [False]),
        ("prefect.flow-run.Running", '{"intended": {"to": ["RUNNING"]}}', "{}", [False]),
        ("prefect.flow-run.Running", '{"intended": {"to": "RUNNING plate"}}', "{}", [False]),
        ("prefect.flow-run.Running", '{"intended": {"a\\": \\"to": "RUNNING"}}', "{}", [False]),
        ("prefect.flow-run.Running", '{"intended": {"to": "RUNNING"}', "{}", [False]),
    ],
)
def test_event_json_state_places(
    tmp_path: Path, event: str, payload: str, resource: str, expected: list[bool]
) -> None:
    """A state type in an event's JSON is Prefect's only where a run's state-change event
    writes one: its payload's transition and states, a run resource's state label."""
    path = tmp_path / "prefect.db"
    con = _database(path)
    con.execute(
        "INSERT INTO events VALUES ('e', '2026-12-04', ?, ?, ?)", (event, resource, payload)
    )
    con.close()
    assert [excused(path, [span], RULE) for span in _spans(path, b"RUNNING")] == expected


@pytest.mark.parametrize(
    ("resource_id", "expected"), [("prefect.task-run.5e1d", True), ("hotlist.plate", False)]
)
def test_an_event_resources_state_label_counts_for_a_runs_resource_only(
    tmp_path: Path, resource_id: str, expected: bool
) -> None:
    path = tmp_path / "prefect.db"
    con = _database(path)
    con.execute("CREATE TABLE event_resources (resource_id TEXT, resource TEXT, event_id TEXT)")
    resource = '{"prefect.state-name": "Running", "prefect.state-type": "RUNNING"}'
    con.execute("INSERT INTO event_resources VALUES (?, ?, 'e')", (resource_id, resource))
    con.close()
    assert excused(path, _spans(path, b"RUNNING"), RULE) is expected


def test_the_verifications_raw_search_passes_prefects_words_and_finds_a_log_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "prefect.db"
    con = _database(path)
    _state(con, 1, "RUNNING")
    con.close()
    search = ByteSearch(raw_patterns(["RUNNING"]))
    assert search.files([path]) == [False]
    con = sqlite3.connect(path)
    con.execute("INSERT INTO log VALUES ('a', 'flow', 20, 'seen RUNNING')")
    con.commit()
    con.close()
    assert search.files([path]) == [True]


def test_the_state_types_are_prefects() -> None:
    from prefect.client.schemas.objects import StateType

    assert {s.value for s in StateType} == STATE_TYPES


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flips=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=40))
def test_a_damaged_file_places_nothing_it_cannot_read_and_never_fails(
    tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[int, int]]
) -> None:
    root = tmp_path_factory.mktemp("damaged")
    path = root / "prefect.db"
    con = _database(path)
    for i in range(40):
        _state(con, i, "RUNNING", message="x RUNNING" if i == 3 else "")
    con.close()
    data = bytearray(path.read_bytes())
    for at, byte in flips:
        data[at % len(data)] = byte
    path.write_bytes(bytes(data))
    assert excused(path, _spans(path, b"RUNNING"), RULE) in (True, False)
    assert excused(root / "missing.db", [(0, 7)], RULE) is False
    (root / "short.db").write_bytes(bytes(data[:150]))
    assert excused(root / "short.db", _spans(root / "short.db", b"RUNNING"), RULE) in (True, False)


def test_bytes_across_a_records_header_and_its_first_value_are_no_copy(tmp_path: Path) -> None:
    """A text of 36 characters has the serial type 85 (``U``), one of 26 the type 65
    (``A``): a row (no note, time, UUID, time, time) is stored as its header, ``0AUAA``,
    then its values, the first time first: ``UAA2026``. No value holds those bytes; a value that
    does is a finding."""
    path = tmp_path / "prefect.db"
    con = _database(path)
    con.execute("CREATE TABLE run (note TEXT, t TEXT, id TEXT, a TEXT, b TEXT)")
    time = "2026-12-04T10:00:00.00000Z"
    for i in range(20):
        row = (time, f"{i:08d}-0000-4000-8000-000000000000", time, time)
        con.execute("INSERT INTO run VALUES (NULL, ?, ?, ?, ?)", row)
    con.close()
    spans = _spans(path, b"UAA2026")
    assert len(spans) == 20 and excused(path, spans, RULE)
    search = ByteSearch(raw_patterns(["UAA2026"]))
    assert search.files([path]) == [False]
    con = sqlite3.connect(path)
    con.execute("UPDATE run SET note = 'plate UAA2026 seen' WHERE id LIKE '00000003%'")
    con.commit()
    con.close()
    assert search.files([path]) == [True]


def test_a_schema_statement_only_in_the_write_ahead_log_is_the_databases_words(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fresh.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("CREATE TABLE later (id INTEGER PRIMARY KEY, UNIQUE_NOTE TEXT UNIQUE)")
    wal = tmp_path / "fresh.db-wal"
    assert b"UNIQUE_NOTE" in wal.read_bytes() and b"UNIQUE_NOTE" not in path.read_bytes()
    assert ByteSearch(raw_patterns(["UNIQUE"])).files([wal]) == [False]
    con.execute("INSERT INTO later VALUES (1, 'UNIQUE plate')")
    assert ByteSearch(raw_patterns(["UNIQUE"])).files([wal]) == [True]
    con.close()


def test_block_type_definitions_and_configuration_keys_are_prefects_and_block_data_is_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "prefect.db"
    con = _database(path)
    con.executescript(
        """
        CREATE TABLE block_type (id TEXT PRIMARY KEY, name TEXT, description TEXT,
            code_example TEXT, slug TEXT);
        CREATE TABLE block_schema (id TEXT PRIMARY KEY, fields TEXT, block_type_id TEXT);
        CREATE TABLE block_document (id TEXT PRIMARY KEY, name TEXT, data TEXT);
        CREATE TABLE configuration (id TEXT PRIMARY KEY, key TEXT UNIQUE, value TEXT);
        """
    )
    example = "SELECT * FROM customers; -- a POSTGRESQL example\n" + "x" * 9000
    con.execute(
        "INSERT INTO block_type VALUES ('t', 'SqlAlchemy', 'MYSQL too', ?, 's')", (example,)
    )
    con.execute("INSERT INTO block_schema VALUES ('s', '{\"maxLength\": 65536}', 't')")
    con.execute("INSERT INTO configuration VALUES ('c', 'TELEMETRY_SESSION', '{}')")
    con.close()
    for word in ("SELECT", "POSTGRESQL", "MYSQL", "65536", "SESSION"):
        assert ByteSearch(raw_patterns([word])).files([path]) == [False], word
    con = sqlite3.connect(path)
    con.execute("INSERT INTO block_document VALUES ('d', 'notes', '{\"plate\": \"MYSQL\"}')")
    con.execute("INSERT INTO configuration VALUES ('e', 'other', '{\"note\": \"SESSION\"}')")
    con.commit()
    con.close()
    assert ByteSearch(raw_patterns(["MYSQL"])).files([path]) == [True]
    assert ByteSearch(raw_patterns(["SESSION"])).files([path]) == [True]


RUNS = """
CREATE TABLE flow_run (id CHAR(36) PRIMARY KEY, created DATETIME, updated DATETIME,
    name VARCHAR NOT NULL, state_type VARCHAR(10), run_count INTEGER DEFAULT 0,
    expected_start_time DATETIME, parameters JSON, state_name VARCHAR);
CREATE INDEX ix_flow_run__name ON flow_run (name);
CREATE INDEX ix_flow_run__state_type ON flow_run (state_type);
"""


def _runs(path: Path, wal: bool = False) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA secure_delete = OFF")
    if wal:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA wal_autocheckpoint = 0")
    con.executescript(RUNS)
    return con


def _run(con: sqlite3.Connection, i: int, name: str, kind: str = "COMPLETED") -> str:
    rid = f"{i:08d}-0000-4000-8000-000000000000"
    con.execute(
        "INSERT INTO flow_run VALUES (?, ?, ?, ?, ?, 1, ?, '{}', ?)",
        (
            rid,
            "2026-12-04 10:00:00.000000",
            "2026-12-04 10:00:00.000000",
            name,
            kind,
            "2026-12-04 10:00:00.000000",
            kind.title(),
        ),
    )
    return rid


def test_a_deleted_run_named_as_the_plate_is_not_read_as_a_state_type(tmp_path: Path) -> None:
    """A freed row's header lost its first bytes: read one column off, its name would be
    its state type. Every column's declared kind must fit for a freed row to read back."""
    path = tmp_path / "prefect.db"
    con = _runs(path)
    for i in range(20):
        _run(con, i, f"run-{i:02d}")
    named = [_run(con, 100 + i, "FAILED") for i in range(5)]
    for i in range(20):
        _run(con, 200 + i, f"zun-{i:02d}")
    for rid in named:
        con.execute("DELETE FROM flow_run WHERE id = ?", (rid,))
    for i in range(5):
        _run(con, 300 + i, f"new-{i:02d}")
    con.close()
    assert b"FAILED" in path.read_bytes()
    assert ByteSearch(raw_patterns(["FAILED"])).files([path]) == [True]


@pytest.mark.parametrize("wal", [False, True])
def test_an_index_of_names_is_not_read_as_an_index_of_state_types(
    tmp_path: Path, wal: bool
) -> None:
    """Entries (name, rowid) and (state type, rowid) have one shape: a page image is
    read as the b-tree that owned it when it was written, never as any of that shape."""
    path = tmp_path / "prefect.db"
    con = _runs(path, wal)
    con.execute("BEGIN")
    named = []
    for i in range(600):
        _run(con, i, f"kept-run-{i:05d}", "RUNNING")
        named.append(_run(con, 10_000 + i, "FAILED", "RUNNING"))
    con.execute("COMMIT")
    con.execute("BEGIN")
    for rid in named:
        con.execute("DELETE FROM flow_run WHERE id = ?", (rid,))
    con.execute("COMMIT")
    for i in range(200):
        _run(con, 20_000 + i, "FAILEC", "RUNNING")
    files = [path, tmp_path / "prefect.db-wal"] if wal else [path]
    found = ByteSearch(raw_patterns(["FAILED"])).files(files)
    con.close()
    assert any(found), found


def test_a_file_with_bytes_past_its_last_page_places_nothing_there_and_never_fails(
    tmp_path: Path,
) -> None:
    path = tmp_path / "prefect.db"
    con = _database(path)
    _state(con, 1, "RUNNING")
    con.close()
    path.write_bytes(path.read_bytes() + b"\x05\x00\x00\x00\x01RUNNING")
    assert ByteSearch(raw_patterns(["RUNNING"])).files([path]) == [True]


@pytest.mark.parametrize(
    "statement",
    [
        "VACUUM INTO '{target}'",
        "CREATE TABLE zz AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
        " SELECT count(*) FROM c",
        "ATTACH '{target}' AS other",
    ],
)
def test_the_statements_a_searched_file_holds_are_never_run_but_to_make_its_tables(
    tmp_path: Path, statement: str
) -> None:
    """A schema row written with ``writable_schema`` may hold any statement: the search
    makes tables and indexes only, refusing what they would ask beyond that."""
    path = tmp_path / "prefect.db"
    target = tmp_path / "written by the search.db"
    con = _database(path)
    _state(con, 1, "RUNNING", message="stopped RUNNING at the gate")
    con.execute("PRAGMA writable_schema = ON")
    con.execute(
        "INSERT INTO sqlite_master VALUES ('table', 'zz', 'zz', 0, ?)",
        (statement.format(target=target),),
    )
    con.close()
    assert ByteSearch(raw_patterns(["RUNNING"])).files([path]) == [True]
    assert not target.exists()
