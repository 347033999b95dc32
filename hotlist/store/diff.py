"""The diff of a new content file against the current one: what was added, changed and
removed, and which current entries a quarantined row keeps.

Compared in DuckDB, where the content is, while the new content file is written
(:mod:`hotlist.store.write`): the new entries as ``entries``, the current file attached
as ``prev``.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from hotlist.columns import CONTENT_COLUMNS, LINE_KEY_COLUMNS
from hotlist.sql import literal

#: What a removed entry leaves for its tombstone (the plate and state only to be hashed).
_REMOVED_SCHEMA = {
    "entry_id": pl.Int64,
    "list": pl.String,
    "record_id": pl.String,
    "plate": pl.String,
    "state": pl.String,
}


@dataclass(frozen=True)
class Delta:
    added: pl.Series
    changed: pl.Series
    removed: pl.DataFrame  # entry_id, list, record_id, plate, state: for the tombstones
    carried: pl.Series
    previous_count: int
    entries: int = 0


def carried_ids(missing: pl.DataFrame, quarantine: pl.DataFrame) -> pl.Series:
    """Ids of current entries absent from the file whose identity a quarantined row still
    shows: they stay (the record still exists upstream; a formatting fault must not
    delete it)."""
    if quarantine.height == 0 or missing.height == 0:
        return pl.Series("entry_id", [], dtype=pl.Int64)
    parts = []
    if "record_id" in missing.columns:
        by_record = quarantine["carry_record_id"].drop_nulls().unique()
        parts.append(missing.filter(pl.col("record_id").is_in(by_record.implode())))
    if {"plate", "state"} <= set(missing.columns):
        by_plate = quarantine.select(
            pl.col("carry_plate").alias("plate"), pl.col("carry_state").alias("state")
        ).drop_nulls()
        parts.append(missing.join(by_plate.unique(), on=["plate", "state"], how="semi"))
    return pl.concat(parts)["entry_id"].unique().sort()


def first_version(con: duckdb.DuckDBPyConnection) -> Delta:
    """The delta of a feed's first version: every entry added."""
    ids = con.sql("SELECT entry_id FROM entries ORDER BY 1").pl()["entry_id"]
    return Delta(ids, ids.clear(), pl.DataFrame(schema=_REMOVED_SCHEMA), ids.clear(), 0)


def against_previous(
    con: duckdb.DuckDBPyConnection,
    quarantine: pl.DataFrame,
    identity: list[str],
    parsed: pl.Series | None = None,
) -> Delta:
    """Compare ``entries`` with the attached ``prev``; carry forward what a quarantined row
    still names (inserting it into ``entries``), and say what was added, changed and
    removed.

    The identity columns are not compared: the entry id is derived from them, so rows of
    one id agree on them. When only the lines ``parsed`` were parsed (the others' entries
    are copies of ``prev``'s), only their entries can be added or changed: the comparison
    joins those few, and finds what was removed by entry id alone.
    """
    differs = " OR ".join(
        f"n.{c} IS DISTINCT FROM p.{c}" for c in CONTENT_COLUMNS if c not in identity
    )
    if parsed is None:
        delta = con.sql(
            "SELECT coalesce(n.entry_id, p.entry_id) AS entry_id,"  # noqa: S608 (quoted identifiers and constant fragments; values bound)
            " CASE WHEN p.entry_id IS NULL THEN 'add' WHEN n.entry_id IS NULL THEN 'remove'"
            " ELSE 'change' END AS op, p.list, p.record_id, p.plate, p.state"
            " FROM entries n FULL OUTER JOIN prev.entries p ON n.entry_id = p.entry_id"
            f" WHERE n.entry_id IS NULL OR p.entry_id IS NULL OR {differs} ORDER BY 1"
        ).pl()
    else:
        con.register("_parsed", pl.DataFrame({"line_no": parsed}).to_arrow())
        delta = con.sql(
            "SELECT n.entry_id, CASE WHEN p.entry_id IS NULL THEN 'add' ELSE 'change' END AS op,"  # noqa: S608 (quoted identifiers and constant fragments; values bound)
            " p.list, p.record_id, p.plate, p.state"
            " FROM (SELECT * FROM entries SEMI JOIN _parsed USING (line_no)) n"
            " LEFT JOIN prev.entries p ON n.entry_id = p.entry_id"
            f" WHERE p.entry_id IS NULL OR {differs}"
            " UNION ALL SELECT p.entry_id, 'remove', p.list, p.record_id, p.plate, p.state"
            " FROM prev.entries p ANTI JOIN entries n ON n.entry_id = p.entry_id ORDER BY 1"
        ).pl()
        con.unregister("_parsed")
    missing = delta.filter(pl.col("op") == "remove").drop("op")
    carried = carried_ids(missing, quarantine)
    if carried.len():
        con.register("_carried", pl.DataFrame({"entry_id": carried}).to_arrow())
        # A carried entry stands for no line of this file: no line number, no line key.
        unlined = ", ".join(literal(c) for c in ("line_no", *LINE_KEY_COLUMNS))
        con.execute(
            f"INSERT INTO entries BY NAME SELECT COLUMNS(lambda c: c NOT IN ({unlined}))"  # noqa: S608 (quoted identifiers and constant fragments; values bound)
            " FROM prev.entries WHERE entry_id IN (SELECT entry_id FROM _carried)"
        )
        con.unregister("_carried")
    [count] = con.execute("SELECT count(*) FROM prev.entries").fetchall()
    return Delta(
        added=delta.filter(pl.col("op") == "add")["entry_id"],
        changed=delta.filter(pl.col("op") == "change")["entry_id"],
        removed=missing.filter(~pl.col("entry_id").is_in(carried.implode())),
        carried=carried,
        previous_count=int(count[0]),
    )
