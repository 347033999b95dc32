"""The snapshot diff: which entries a new file adds, changes, removes, and carries forward.

Pure functions over polars frames; entry ids are opaque integers handed out in file order.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

#: Columns compared to decide that an entry changed (everything but its position).
CONTENT_COLUMNS = (
    "list",
    "record_id",
    "ori",
    "record_date",
    "plate",
    "plate_raw",
    "state",
    "state_raw",
    "county",
    "plate_year",
    "plate_type",
    "vehicle_year",
    "make",
    "model",
    "style",
    "colour",
)


@dataclass(frozen=True)
class SnapshotDiff:
    """The next snapshot of a feed and how it differs from the current one."""

    entries: pl.DataFrame
    added: pl.Series
    changed: pl.Series
    removed: pl.DataFrame
    carried: int


def diff_snapshot(
    previous: pl.DataFrame,
    staged: pl.DataFrame,
    quarantine: pl.DataFrame,
    identity: list[str],
    first_new_id: int,
) -> SnapshotDiff:
    """Diff ``staged`` (a parsed file's good rows) against ``previous`` (the current entries).

    ``previous`` has the columns ``entry_id`` + those of ``staged`` (empty for a first load).

    An entry keeps its id while its identity stands in the file. A quarantined row whose
    identity can still be read keeps the previous version of that entry (it still exists
    upstream; a formatting fault must not delete it).
    """
    keyed = staged.join(previous.select([*identity, "entry_id"]), on=identity, how="left")
    fresh = keyed.filter(pl.col("entry_id").is_null()).sort("line_no")
    fresh = fresh.with_columns(
        pl.int_range(first_new_id, first_new_id + fresh.height, dtype=pl.Int64).alias("entry_id")
    )
    kept = keyed.filter(pl.col("entry_id").is_not_null())
    missing = previous.join(staged.select(identity), on=identity, how="anti")
    carried = _carried(missing, quarantine)
    columns = previous.columns
    entries = pl.concat(
        [
            kept.select(columns),
            fresh.select(columns),
            # A carried entry stands on no line of this file.
            carried.with_columns(pl.lit(None, pl.Int64).alias("line_no")).select(columns),
        ],
        how="vertical_relaxed",
    )
    removed = missing.join(carried.select("entry_id"), on="entry_id", how="anti")
    return SnapshotDiff(
        entries=entries,
        added=fresh["entry_id"],
        changed=_changed(previous, kept),
        removed=removed,
        carried=carried.height,
    )


def _carried(missing: pl.DataFrame, quarantine: pl.DataFrame) -> pl.DataFrame:
    by_record = quarantine.select(pl.col("carry_record_id").alias("record_id")).drop_nulls()
    by_plate = quarantine.select(
        pl.col("carry_plate").alias("plate"), pl.col("carry_state").alias("state")
    ).drop_nulls()
    return pl.concat(
        [
            missing.join(by_record.unique(), on="record_id", how="semi"),
            missing.join(by_plate.unique(), on=["plate", "state"], how="semi"),
        ]
    ).unique("entry_id", keep="first")


def _changed(previous: pl.DataFrame, kept: pl.DataFrame) -> pl.Series:
    if kept.height == 0:
        return pl.Series("entry_id", [], dtype=pl.Int64)
    both = kept.join(previous.select(["entry_id", *CONTENT_COLUMNS]), on="entry_id", suffix="_prev")
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_prev")) for c in CONTENT_COLUMNS)
    return both.filter(differs)["entry_id"]
