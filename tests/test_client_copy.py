"""The reference client's copy: a full version lands as the server sent it, a delta is
merged into it, and a body that is not a whole Parquet file leaves the copy as it was."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import polars as pl
import pytest

from hotlist.serve.client import Copy, _apply


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
    copy = Copy(tmp_path / "copy")
    body = _parquet(VERSION_1)
    result = _apply(copy, _answer(body, 1, full=True))
    assert (copy.path.read_bytes(), result.entries, result.version) == (body, 3, 1)
    assert oct(copy.path.stat().st_mode & 0o777) == "0o600"


def test_a_delta_removes_and_upserts_and_leaves_nothing_else(tmp_path: Path) -> None:
    copy = Copy(tmp_path / "copy")
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
    copy = Copy(tmp_path / "copy")
    body = _parquet(VERSION_1)
    _apply(copy, _answer(body, 1, full=True))
    with pytest.raises(Exception, match=r"(?i)parquet|magic|footer"):
        _apply(copy, _answer(body[: len(body) // 2], 2, full=True))
    assert copy.path.read_bytes() == body
    assert copy.version == 1
    assert [p.name for p in copy.path.parent.iterdir()] == sorted(["hotlist.parquet", "state.json"])
