"""A version's Parquet and CSV, written from one read of the entries (hotlist.published_files)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest

from hotlist import csvsafe, published_files
from hotlist.published_files import write_version_files


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE entries AS SELECT * FROM (VALUES"
        " (3, '7ABC123', 'CA', DATE '2024-01-05', 'BLK'),"
        " (1, '7ABC123', 'AZ', DATE '2024-02-01', '=1+2'),"
        " (2, '1XYZ999', 'CA', NULL, '@SUM(A1)'),"
        " (4, '9KKK000', 'NV', DATE '2023-12-31', NULL))"
        " AS t(entry_id, plate, state, record_date, colour)"
    )
    return con


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_both_files_hold_the_querys_rows_in_its_order_and_the_csv_is_neutralized(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    query = "SELECT * FROM entries ORDER BY plate, state, entry_id"
    rows, _ = write_version_files(con, query, tmp_path)
    expected = con.sql(query).pl()
    parquet = pl.read_parquet(tmp_path / "hotlist.parquet")
    csv = pl.read_csv(tmp_path / "hotlist.csv", schema=parquet.schema)
    assert rows == 4
    assert parquet.equals(expected)
    assert csv.equals(csvsafe.frame(expected))
    assert csv["colour"].to_list() == ["'@SUM(A1)", "'=1+2", "BLK", None]


def test_the_hashes_are_those_of_the_files_as_written_and_the_files_are_private(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _, hashes = write_version_files(con, "SELECT * FROM entries", tmp_path)
    assert set(hashes) == {"hotlist.parquet", "hotlist.csv"}
    for name, digest in hashes.items():
        assert digest == _sha256(tmp_path / name)
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_more_rows_than_a_batch_stay_whole_and_in_order(tmp_path: Path) -> None:
    con = duckdb.connect()
    query = "SELECT i AS entry_id, printf('P%07d', i) AS plate FROM range(600000) t(i) ORDER BY i"
    rows, _ = write_version_files(con, query, tmp_path)
    parquet = pl.read_parquet(tmp_path / "hotlist.parquet")
    csv = pl.read_csv(tmp_path / "hotlist.csv", schema=parquet.schema)
    assert rows == parquet.height == csv.height == 600000
    assert parquet["entry_id"].to_list() == list(range(600000))
    assert csv.equals(parquet)


def test_no_entries_still_give_a_csv_header_and_a_parquet_schema(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows, _ = write_version_files(con, "SELECT * FROM entries WHERE false", tmp_path)
    assert rows == 0
    assert (tmp_path / "hotlist.csv").read_text() == "entry_id,plate,state,record_date,colour\n"
    parquet = pl.read_parquet(tmp_path / "hotlist.parquet")
    assert parquet.height == 0
    assert parquet.columns == ["entry_id", "plate", "state", "record_date", "colour"]


def test_a_file_left_in_the_directory_is_never_written_through(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A leftover (or a link planted where the file goes) is refused, not followed: the
    caller scrubs the directory first."""
    (tmp_path / "hotlist.parquet").write_bytes(b"left over")
    with pytest.raises(FileExistsError):
        write_version_files(con, "SELECT * FROM entries", tmp_path)
    assert (tmp_path / "hotlist.parquet").read_bytes() == b"left over"


def test_a_csv_write_that_fails_midway_fails_the_whole_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CSV is written on a thread of its own: its error still ends the write (and no
    batch after it is written)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE entries AS SELECT range AS entry_id FROM range(3 * 262_144)")
    written: list[int] = []

    def full_disk(out: object, batch: pa.RecordBatch, header: bool) -> None:
        if written:
            raise OSError(28, "No space left on device")
        written.append(batch.num_rows)

    monkeypatch.setattr(published_files, "_csv_batch", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_version_files(con, "SELECT * FROM entries ORDER BY entry_id", tmp_path)
    assert len(written) == 1
