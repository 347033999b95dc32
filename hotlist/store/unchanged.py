"""Lines the current version already holds, unchanged: copied, not parsed again.

A line's entry and warnings depend on nothing but the line and the parser
(:attr:`hotlist.parse.Snapshot.parser`), so a line that the current content file holds as
an entry, written by the same parser, gives the same entry again: its line key (the keyed
XXH3-128 of the raw line, :class:`hotlist.keyed.LineKeyer`) finds it there.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from hotlist.columns import ISSUE_SCHEMA
from hotlist.parse import Snapshot
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


def copy_unchanged(
    con: duckdb.DuckDBPyConnection, suppressed: list[str]
) -> tuple[int, int, pl.DataFrame]:
    """Copy into ``entries`` the entries ``prev`` holds for lines of the snapshot, at their
    new line numbers, but not those of manually purged records. Return how many were
    copied and suppressed, and the lines' warnings (as ``prev`` recorded them)."""
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
    warnings = con.sql(
        "SELECT k.line_no, w.field, w.rule, 'warning' AS severity FROM prev.warnings w"  # noqa: S608 (quoted identifiers and constant fragments; values bound)
        f" JOIN prev.entries p ON p.line_no = w.line_no JOIN _line_keys k ON {_SAME_LINE}"
    ).pl()
    if suppressed:
        con.unregister("_suppressed")
    return int(copied), int(dropped), warnings.cast(ISSUE_SCHEMA)
