"""The reference client's copy: a full version lands as the server sent it, a delta is
merged into it, and a body that is not a whole Parquet file leaves the copy as it was."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hotlist.serve.client import _apply
from hotlist.serve.copies import ParquetCopy


def _answer(body: bytes, version: int, full: bool) -> httpx.Response:
    headers = {"X-Hotlist-Version": str(version), "X-Hotlist-Full": "true" if full else "false"}
    return httpx.Response(200, headers=headers, content=body)


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


VERSION_1 = pl.DataFrame(
    {"entry_id": [1, 2, 3], "plate": ["1ABC123", "2DEF456", "3GHI789"], "state": ["CA"] * 3}
)


def test_a_full_version_is_the_servers_file_byte_for_byte(tmp_path: Path) -> None:
    copy = ParquetCopy(tmp_path / "copy")
    body = _parquet(VERSION_1)
    result = _apply(copy, _answer(body, 1, full=True))
    assert (copy.path.read_bytes(), result.entries, result.version) == (body, 3, 1)
    assert oct(copy.path.stat().st_mode & 0o777) == "0o600"


def test_a_delta_removes_and_upserts_and_leaves_nothing_else(tmp_path: Path) -> None:
    copy = ParquetCopy(tmp_path / "copy")
    _apply(copy, _answer(_parquet(VERSION_1), 1, full=True))
    delta = pl.DataFrame(
        {
            "entry_id": [2, 3, 4],
            "plate": [None, "3GHI780", "4JKL012"],
            "state": [None, "CA", "NV"],
            "op": ["remove", "upsert", "upsert"],
        }
    )
    result = _apply(copy, _answer(_parquet(delta), 2, full=False))
    rows = pl.read_parquet(copy.path).sort("entry_id").rows()
    assert rows == [(1, "1ABC123", "CA"), (3, "3GHI780", "CA"), (4, "4JKL012", "NV")]
    assert (result.entries, result.upserts, result.removals) == (3, 2, 1)
    assert not copy.replaced.exists()  # the copy it replaced is scrubbed away


def test_a_body_that_is_not_a_whole_parquet_file_leaves_the_copy_as_it_was(
    tmp_path: Path,
) -> None:
    copy = ParquetCopy(tmp_path / "copy")
    body = _parquet(VERSION_1)
    _apply(copy, _answer(body, 1, full=True))
    with pytest.raises(Exception, match=r"(?i)parquet|magic|footer"):
        _apply(copy, _answer(body[: len(body) // 2], 2, full=True))
    assert copy.path.read_bytes() == body
    assert copy.version == 1
    assert [p.name for p in copy.path.parent.iterdir()] == sorted(["hotlist.parquet", "state.json"])


def _server_file(frame: pl.DataFrame, row_group_rows: int = 1_000) -> bytes:
    """A full version as the server writes it (pyarrow, dictionary pages, zstd)."""
    buffer = io.BytesIO()
    pq.write_table(frame.to_arrow(), buffer, compression="zstd", row_group_size=row_group_rows)
    return buffer.getvalue()


def _fleet(rows: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "entry_id": list(range(rows)),
            "plate": [f"P{i:07d}X" for i in range(rows)],
            "state": ["CA", "NV", "OR"] * (rows // 3) + ["CA"] * (rows % 3),
        },
        schema={"entry_id": pl.Int64, "plate": pl.String, "state": pl.String},
    )


def _delta(removed: list[int], upserted: pl.DataFrame) -> bytes:
    rows = pl.concat(
        [
            upserted.with_columns(pl.lit("upsert").alias("op")),
            pl.DataFrame({"entry_id": removed}).with_columns(pl.lit("remove").alias("op")),
        ],
        how="diagonal_relaxed",
    )
    return _parquet(rows)


def test_a_removed_record_leaves_no_byte_in_the_copys_directory(tmp_path: Path) -> None:
    copy = ParquetCopy(tmp_path / "copy")
    _apply(copy, _answer(_server_file(_fleet(3_000)), 1, full=True))
    _apply(copy, _answer(_delta([17, 2_999], _fleet(0)), 2, full=False))
    files = b"".join(p.read_bytes() for p in copy.path.parent.iterdir())
    assert b"P0000017X" not in files and b"P0002999X" not in files
    assert b"P0000018X" in files  # the pages are stored as written: the check can see a plate
    assert pl.read_parquet(copy.path).height == 2_998


def test_a_delta_keeps_the_rows_order_and_puts_the_upserts_after_them(tmp_path: Path) -> None:
    copy = ParquetCopy(tmp_path / "copy")
    _apply(copy, _answer(_server_file(_fleet(3_000)), 1, full=True))
    changed = pl.DataFrame({"entry_id": [5, 9_000], "plate": ["Q5", "Q9000"], "state": ["AZ"] * 2})
    _apply(copy, _answer(_delta([0], changed), 2, full=False))
    ids = pl.read_parquet(copy.path)["entry_id"].to_list()
    assert ids == [i for i in range(1, 3_000) if i != 5] + [5, 9_000]


def test_readers_of_a_delta_applied_copy_see_strings_as_in_the_servers_file(
    tmp_path: Path,
) -> None:
    copy = ParquetCopy(tmp_path / "copy")
    _apply(copy, _answer(_server_file(_fleet(3_000)), 1, full=True))
    for version in (2, 3):  # the second delta reads a copy the first one wrote
        _apply(copy, _answer(_delta([version], _fleet(0)), version, full=False))
    assert pl.read_parquet(copy.path).schema == _fleet(0).schema
    assert pq.read_table(copy.path).schema.field("state").type == pa.string()
    group = pq.ParquetFile(copy.path).metadata.row_group(0)
    state = group.column(2)  # few values: kept with a dictionary, as the server stored it
    assert (state.path_in_schema, state.has_dictionary_page) == ("state", True)
    assert {group.column(i).compression for i in range(3)} == {"UNCOMPRESSED"}


def test_deltas_do_not_leave_the_copy_in_slivers_of_row_groups(tmp_path: Path) -> None:
    copy = ParquetCopy(tmp_path / "copy")
    _apply(copy, _answer(_server_file(_fleet(3_000), row_group_rows=500), 1, full=True))
    for version in range(2, 12):
        one_more = pl.DataFrame({"entry_id": [10_000 + version], "plate": ["N"], "state": ["CA"]})
        _apply(copy, _answer(_delta([version], one_more), version, full=False))
    meta = pq.ParquetFile(copy.path).metadata
    assert (meta.num_rows, meta.num_row_groups) == (3_000, 1)
