"""The stream write: a snapshot's entries into the new content file's ``entries`` table,
chunk by chunk, and the lines' warnings into its ``warnings`` table, in one transaction
(no tables, or the tables and all their rows).

One ``INSERT ... SELECT`` reads the chunks' entries as an Arrow stream: DuckDB fills whole
row groups and compresses them while the next chunks are parsed (:class:`ParsedInOrder`),
where an insert per chunk would leave partial row groups for the next insert to rewrite.
Memory stays bounded by a chunk.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from hotlist.columns import ISSUE_SCHEMA
from hotlist.parse import Snapshot, sum_excluded
from hotlist.sql import identifier
from hotlist.store.chunks import EntryKeys, ParsedInOrder, suppress
from hotlist.store.unchanged import Copied, copy_unchanged, lines_to_parse, release

#: High-entropy identifiers are stored uncompressed: DuckDB's string compression saves
#: little on them for a noticeable share of the write's CPU time (``bench/`` measures it).
UNCOMPRESSED_COLUMNS = ("record_id", "plate")

#: How parsed entries are written: a raw value equal to its normalized one is kept as null.
_STORED = (
    "SELECT * REPLACE (nullif(plate_raw, plate) AS plate_raw,"
    " nullif(state_raw, state) AS state_raw) FROM {}"
)

#: A line's warnings, as the next version copies them with the line (:mod:`.unchanged`).
_WARNINGS_TABLE = "CREATE TABLE warnings (line_no BIGINT, field VARCHAR, rule VARCHAR)"


@dataclass(frozen=True)
class Staged:
    """What streaming a snapshot into a new content file produced."""

    quarantine: pl.DataFrame
    #: Every issue of the lines parsed, and the first warnings of the lines copied (as
    #: many as a file event lists): what is reported, not what the ``warnings`` table holds.
    issues: pl.DataFrame
    excluded: dict[str, int]
    reused: int = 0  # lines whose entry was copied from the current file, not parsed again
    parsed: pl.Series | None = None  # the lines parsed, when not all were
    unlisted_warnings: int = 0  # warnings of copied lines counted but not in ``issues``

    @property
    def row_errors(self) -> int:
        return self.quarantine.height

    @property
    def warnings(self) -> int:
        return int((self.issues["severity"] == "warning").sum()) + self.unlisted_warnings


def _table_definition(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """The ``entries`` columns, named and typed as ``relation``'s."""
    columns = con.sql(f"DESCRIBE {relation}").fetchall()
    return ", ".join(
        f"{identifier(name)} {kind}"
        + (" USING COMPRESSION uncompressed" if name in UNCOMPRESSED_COLUMNS else "")
        for name, kind, *_ in columns
    )


def write_entries(
    con: duckdb.DuckDBPyConnection,
    snapshot: Snapshot,
    keys: EntryKeys,
    suppressed: list[str],
    previous: Path | None = None,
) -> Staged:
    """Parse the snapshot chunk by chunk into a new ``entries`` table of ``con``.

    A line that ``previous`` (the current content file) holds as an entry, written by the
    same parser, is not parsed again: its entry and warnings are copied from there
    (:mod:`hotlist.store.unchanged`), while the other lines are parsed; the warnings of
    every line go to a new ``warnings`` table of ``con``. Entries of the
    manually purged records ``suppressed`` are left out. On any failure, ``entries`` does
    not exist and the failure is raised as itself (not as DuckDB's stream error).
    """
    fresh = lines_to_parse(con, snapshot, keys, previous) if previous else None
    chunks = ParsedInOrder(snapshot if fresh is None else snapshot.restricted(fresh), keys)
    quarantine: list[pl.DataFrame] = []
    issues: list[pl.DataFrame] = []
    excluded: list[dict[str, int]] = []
    failed: list[BaseException] = []

    def entry_tables() -> Generator[pa.Table, None, None]:
        try:
            for chunk in chunks:
                chunk = suppress(chunk, suppressed)
                quarantine.append(chunk.quarantine)
                issues.append(chunk.issues)
                excluded.append(chunk.excluded)
                yield chunk.entries.to_arrow()
        except BaseException as exc:  # DuckDB reports it as a stream error: keep the original
            failed.append(exc)
            raise

    tables = entry_tables()
    copied = Copied(0, 0, 0, pl.DataFrame(schema=ISSUE_SCHEMA))
    begun = False  # one transaction: no table, or the table and all its rows
    try:
        if fresh is not None:  # the same parser wrote ``prev``: its columns are these
            con.execute("BEGIN TRANSACTION")
            begun = True
            con.execute(f"CREATE TABLE entries ({_table_definition(con, 'prev.entries')})")
            con.execute(_WARNINGS_TABLE)
            copied = copy_unchanged(con, suppressed)
        head = [next(tables)]  # a snapshot has at least one chunk, perhaps of no entries
        schema = head[0].schema

        def batches() -> Iterator[pa.RecordBatch]:
            # No reference outlives its chunk (the first leaves ``head`` as it is read).
            table: pa.Table | None = head.pop()
            while table is not None:
                yield from (
                    table if table.schema.equals(schema) else table.cast(schema)
                ).to_batches()
                table = next(tables, None)

        if fresh is None:
            con.register("_entries_shape", schema.empty_table())
            definition = _table_definition(con, f"({_STORED.format('_entries_shape')})")
            con.unregister("_entries_shape")
            con.execute("BEGIN TRANSACTION")
            begun = True
            con.execute(f"CREATE TABLE entries ({definition})")
            con.execute(_WARNINGS_TABLE)
        con.register("_entries", pa.RecordBatchReader.from_batches(schema, batches()))
        try:
            con.execute(f"INSERT INTO entries BY NAME {_STORED.format('_entries')}")
        finally:
            con.unregister("_entries")
        parsed_issues = pl.concat(issues)
        _insert_warnings(con, parsed_issues)
        con.execute("COMMIT")
        begun = False
    except BaseException as exc:
        if begun:
            con.execute("ROLLBACK")
        if failed and isinstance(exc, duckdb.Error):
            raise failed[0] from None
        raise
    finally:
        tables.close()
        chunks.close()  # stops the parse threads when the write ended early
        if fresh is not None:
            release(con)
    if copied.suppressed:
        excluded.append({"suppressed_manual_purge": copied.suppressed})
    return Staged(
        quarantine=pl.concat(quarantine),
        issues=pl.concat([parsed_issues, copied.first_warnings]),
        excluded=sum_excluded(excluded),
        reused=copied.entries,
        parsed=fresh,
        unlisted_warnings=copied.warnings - copied.first_warnings.height,
    )


def _insert_warnings(con: duckdb.DuckDBPyConnection, issues: pl.DataFrame) -> None:
    """Add the warnings among ``issues`` (of parsed lines) to ``warnings``."""
    warnings = issues.filter(pl.col("severity") == "warning").select("line_no", "field", "rule")
    if warnings.height:
        con.register("_warnings", warnings.to_arrow())
        try:
            con.execute("INSERT INTO warnings SELECT * FROM _warnings")
        finally:
            con.unregister("_warnings")
