"""What a purge searches for: the plates of the records awaiting purge.

They are read from the superseded content files that still hold those records, which
are therefore kept until the purge has verified everything else and marked the records
purged (see :mod:`hotlist.purge`). A plate another current entry still carries lawfully
is no trace of the removed record and is not searched for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl


@dataclass(frozen=True)
class Markers:
    """What a purge searches for: the plates of the pending records, read from the
    superseded files, and the entry ids those files were found to hold."""

    plates: list[str]
    found: set[int]


def collect_markers(
    con: duckdb.DuckDBPyConnection, superseded: list[Path], pending: pl.DataFrame
) -> tuple[Markers, list[Path]]:
    """Plates of the pending records, read from the superseded files that hold them; and
    the superseded files that could not be read (their content cannot be searched for)."""
    if pending.height == 0:
        return Markers([], set()), []
    plates: set[str] = set()
    found: set[int] = set()
    unreadable: list[Path] = []
    con.register("_pending", pending.select("entry_id").to_arrow())
    try:
        for path in superseded:
            try:
                con.execute("ATTACH ? AS old (READ_ONLY)", [str(path)])
            except duckdb.Error:
                unreadable.append(path)
                continue
            try:
                rows = con.execute(
                    "SELECT entry_id, plate, plate_raw FROM old.entries"
                    " WHERE entry_id IN (SELECT entry_id FROM _pending)"
                ).fetchall()
            except duckdb.Error:
                unreadable.append(path)
                rows = []
            finally:
                con.execute("DETACH old")
            for entry_id, plate, plate_raw in rows:
                found.add(int(entry_id))
                plates |= {v for v in (plate, plate_raw) if v}
    finally:
        con.unregister("_pending")
    return Markers(sorted(plates), found), unreadable


def still_listed(
    con: duckdb.DuckDBPyConnection, current: list[Path], plates: list[str]
) -> set[str]:
    """Plates of removed records that another current entry still carries lawfully (the
    same plate under another record): finding them is no trace of the removed record.
    The removed record itself is checked by its entry id."""
    if not plates:
        return set()
    con.register("_plates", pl.DataFrame({"p": plates}).to_arrow())
    listed: set[str] = set()
    for path in current:
        con.execute("ATTACH ? AS cur (READ_ONLY)", [str(path)])
        try:
            listed |= {
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT v FROM (SELECT plate AS v FROM cur.entries UNION ALL"
                    " SELECT plate_raw FROM cur.entries) WHERE v IN (SELECT p FROM _plates)"
                ).fetchall()
            }
        finally:
            con.execute("DETACH cur")
    con.unregister("_plates")
    return listed
