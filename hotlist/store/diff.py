"""What a snapshot diff compares, and which current entries a quarantined row keeps.

Added, changed and removed entries are found in DuckDB, where the content is, while the
new content file is written (:mod:`hotlist.store.apply`).
"""

from __future__ import annotations

import polars as pl

from hotlist.parse import ENTRY_COLUMNS

#: Columns compared to decide that an entry changed (everything but its feed and position).
CONTENT_COLUMNS = tuple(c for c in ENTRY_COLUMNS if c not in ("feed", "line_no"))


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
