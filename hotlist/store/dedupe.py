"""Duplicate identities in one file: the first line of each identity is kept, the others
are reported (as warnings of the file)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl

from hotlist.parse import duplicate_issues
from hotlist.scrub import checkpoint_scrubbing_wal, scrub_unlink
from hotlist.store.content import connect_writer

_LATER_LINES = "QUALIFY row_number() OVER (PARTITION BY entry_id ORDER BY line_no)"


def drop_duplicates(
    con: duckdb.DuckDBPyConnection, tmp: Path, data_dir: Path
) -> tuple[duckdb.DuckDBPyConnection, pl.DataFrame]:
    """Keep the first line of each identity in ``entries`` of ``con`` (the file ``tmp``);
    return the connection to use from now on, and the issues of the lines dropped.

    Rare, so the rewrite runs only when needed, and into a fresh file: deleting rows in
    place would leave them in the file's blocks. The first file is scrubbed.
    """
    dupes = con.sql(f"SELECT line_no FROM entries {_LATER_LINES} > 1").pl()  # noqa: S608 (quoted identifiers and constant fragments; values bound)
    if dupes.height == 0:
        return con, duplicate_issues(dupes)
    checkpoint_scrubbing_wal(con, tmp)  # closing would checkpoint and unlink it unscrubbed
    con.close()
    first = tmp.with_name(tmp.name + ".dupes")
    os.replace(tmp, first)
    con = connect_writer(tmp, data_dir)
    con.execute("ATTACH ? AS dupes (READ_ONLY)", [str(first)])
    con.execute(f"CREATE TABLE entries AS SELECT * FROM dupes.entries {_LATER_LINES} = 1")  # noqa: S608 (quoted identifiers and constant fragments; values bound)
    con.execute("CREATE TABLE warnings AS SELECT * FROM dupes.warnings")
    con.execute("DETACH dupes")
    scrub_unlink(first)
    scrub_unlink(first.with_name(first.name + ".wal"))
    return con, duplicate_issues(dupes)
