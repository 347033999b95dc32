"""Lines the current version already holds, unchanged: copied, not parsed again.

A line's entry and warnings depend on nothing but the line and the parser
(:attr:`hotlist.parse.Snapshot.parser`), so a line that the current content file holds as
an entry, written by the same parser, gives the same entry again: its line key (the keyed
XXH3-128 of the raw line, :class:`hotlist.keyed.LineKeyer`) finds it there.

The copied lines' warnings (1.5M rows when most lines carry an unknown code) go from the
current file's ``warnings`` table to the new file's in DuckDB: only their count and the
first of them that a file event lists come back to Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from hotlist.columns import ISSUE_SCHEMA
from hotlist.parse import Snapshot
from hotlist.store import control
from hotlist.store.chunks import EntryKeys, line_keys

_SAME_LINE = "p.line_key_hi = k.line_key_hi AND p.line_key_lo = k.line_key_lo"


def lines_to_parse(
    con: duckdb.DuckDBPyConnection, snapshot: Snapshot, keys: EntryKeys, previous: Path
) -> pl.Series | None:
    """The line numbers of the snapshot that ``previous`` does not hold as entries: the
    lines left to parse.

    Attaches ``previous`` as ``prev`` and registers the snapshot's line keys as
    ``_line_keys`` for :func:`copy_unchanged`; :func:`release` undoes both. None (nothing
    attached) when ``prev`` was written by another parser or holds no line keys: then
    every line is parsed.
    """
    con.execute("ATTACH ? AS prev (READ_ONLY)", [str(previous)])
    try:
        [(parser,)] = con.sql("SELECT fingerprint FROM prev.parser").fetchall()
    except duckdb.CatalogException:
        parser = None
    if parser != snapshot.parser:
        con.execute("DETACH prev")
        return None
    con.register("_line_keys", line_keys(snapshot, keys).to_arrow())
    fresh: pl.Series = con.sql(
        f"SELECT line_no FROM _line_keys k ANTI JOIN prev.entries p ON {_SAME_LINE}"  # noqa: S608 (quoted identifiers and constant fragments; values bound)
    ).pl()["line_no"]
    return fresh


def release(con: duckdb.DuckDBPyConnection) -> None:
    """Undo what :func:`lines_to_parse` attached and registered."""
    con.unregister("_line_keys")
    con.execute("DETACH prev")


@dataclass(frozen=True)
class Copied:
    """What :func:`copy_unchanged` copied."""

    entries: int
    suppressed: int  # entries of manually purged records left out
    warnings: int  # rows added to ``warnings``
    #: The first of those warnings in issue order (line, field, rule): as many as a file
    #: event lists (:data:`hotlist.store.control.MAX_ISSUES_PER_FILE`), so the issues
    #: listed are the same as if every one of them were in Python.
    first_warnings: pl.DataFrame


def copy_unchanged(con: duckdb.DuckDBPyConnection, suppressed: list[str]) -> Copied:
    """Copy into ``entries`` the entries ``prev`` holds for lines of the snapshot, at their
    new line numbers, but not those of manually purged records; copy the lines' warnings
    (as ``prev`` recorded them) into ``warnings``, both tables already created."""
    source = f"FROM prev.entries p JOIN _line_keys k ON {_SAME_LINE}"
    kept, dropped = "", 0
    if suppressed:
        con.register("_suppressed", pl.DataFrame({"record_id": suppressed}).to_arrow())
        purged = "p.record_id IN (SELECT record_id FROM _suppressed)"
        [(dropped,)] = con.execute(f"SELECT count(*) {source} WHERE {purged}").fetchall()
        kept = f" WHERE NOT coalesce({purged}, false)"
    [(copied,)] = con.execute(
        f"INSERT INTO entries BY NAME SELECT p.* REPLACE (k.line_no AS line_no) {source}{kept}"
    ).fetchall()
    if suppressed:
        con.unregister("_suppressed")
    [(warned,)] = con.execute(
        "INSERT INTO warnings SELECT k.line_no, w.field, w.rule FROM prev.warnings w"  # noqa: S608 (quoted identifiers and constant fragments; values bound)
        f" JOIN prev.entries p ON p.line_no = w.line_no JOIN _line_keys k ON {_SAME_LINE}"
    ).fetchall()
    first = con.sql(
        "SELECT line_no, field, rule, 'warning' AS severity FROM warnings"
        " ORDER BY line_no, field, rule LIMIT ?",
        params=[control.MAX_ISSUES_PER_FILE],
    ).pl()
    return Copied(int(copied), int(dropped), int(warned), first.cast(ISSUE_SCHEMA))
