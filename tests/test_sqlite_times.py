"""A plate of the shape ``04T14`` inside a time hotlist's own SQLite stores write (a key
made, a version acknowledged, a pull seen, an anchor made) is that time's day and hour;
in any other column, or a value that is no time, it is a finding.

The databases are made with the stores' own schemas, by SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hotlist.audit.anchors import _SCHEMA as ANCHORS
from hotlist.scan import ByteSearch, raw_patterns
from hotlist.serve.consumers import SCHEMA as CONSUMERS
from hotlist.serve.seen import SCHEMA as SEEN

PLATE = "04T14"
SEARCH = ByteSearch(raw_patterns([PLATE]))


def _store(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA secure_delete = OFF")
    con.executescript(CONSUMERS + ";" + SEEN + ";" + ANCHORS)
    return con


def _time(minute: int, micro: bool = True) -> str:
    """A time as ``datetime.isoformat`` writes one (no fraction when it is zero)."""
    fraction = f".{minute + 1:06d}" if micro else ""
    return f"2026-12-04T14:{minute % 60:02d}:08{fraction}+00:00"


def test_times_of_every_store_and_their_freed_copies_are_no_plate(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    con = _store(path)
    for i in range(40):
        con.execute(
            "INSERT INTO consumers VALUES (?, ?, 'CA0190000', 'Unit', 'police', ?, NULL, ?, ?)",
            (f"car-{i}", f"{i:064x}", _time(i), i, _time(i + 1)),
        )
        con.execute("INSERT INTO acks VALUES (?, ?, ?)", (f"car-{i}", i, _time(i + 2)))
        con.execute(
            "INSERT INTO anchors VALUES (NULL, ?, 's', ?, 'ab', 'k', 'p', 'cd')", (_time(i), i)
        )
        con.execute("INSERT INTO last_seen VALUES (?, ?)", (f"car-{i}", _time(i)))
    for round_ in range(5):  # pulls seen again: each rewrites its row, the old time freed
        for i in range(40):
            con.execute(
                "UPDATE last_seen SET pulled_at = ? WHERE consumer = ?",
                (_time(i + round_ * 7, micro=False), f"car-{i}"),
            )
            con.execute(
                "UPDATE last_seen SET pulled_at = ? WHERE consumer = ?",
                (_time(i + round_), f"car-{i}"),
            )
    con.close()
    assert path.read_bytes().count(PLATE.encode()) > 200
    assert SEARCH.files([path]) == [False]


def test_the_same_digits_in_another_column_or_in_no_time_are_found(tmp_path: Path) -> None:
    for statement in (
        "UPDATE consumers SET agency_name = 'unit 04T14 east'",
        "UPDATE consumers SET acked_at = 'seen 04T14 at the gate'",
        "UPDATE consumers SET acked_at = '2026-12-04T14:99:08+00:00'",
    ):
        path = tmp_path / f"{abs(hash(statement))}.sqlite"
        con = _store(path)
        con.execute(
            "INSERT INTO consumers VALUES ('car', 'k', 'CA0190000', 'Unit', 'police', ?, NULL, 1, ?)",
            (_time(1), _time(2)),
        )
        assert SEARCH.files([path]) == [False]
        con.execute(statement)
        con.close()
        assert SEARCH.files([path]) == [True], statement
