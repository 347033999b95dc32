"""A version's ``hotlist.parquet`` and ``hotlist.csv``, written from one read of the entries.

The entries are read once, sorted by plate and state, as a stream of Arrow batches: each
batch goes to the Parquet writer and, neutralized (:mod:`hotlist.csvsafe`), to the CSV,
so both files hold the same rows in the same order. Writing the Parquet with DuckDB and
then reading it back for the CSV decoded every entry twice, and materialized the whole
sorted result at once; the stream holds a batch beside the sort (``bench/`` measures it:
``docs/cycle-benchmarks.md``, "Publishing").

The sort stays: every ``hotlist serve`` replica sorts a version by plate when it loads
it, and a sorted file makes that a check rather than a sort (0.5 s instead of 2.2 s of
CPU per load of 1.7M entries); ``hotlist pull`` keeps a full version as it came, so a
patrol copy starts sorted too.

Each file's SHA-256 is computed from the bytes as they are written, not by reading the
file again. Files are created 0600 (they hold record content); the caller fsyncs them
before the version directory is renamed into place.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, cast

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from hotlist import csvsafe
from hotlist.private import PRIVATE_FILE

#: Identifiers, one value per entry: a dictionary of them is as large as the column, and
#: the writer builds it before giving up on it. The other columns are codes and dates,
#: a few thousand values at most, which dictionaries shrink (the file is smaller than
#: with a dictionary for every column, and faster to write and to read).
NO_DICTIONARY = frozenset({"entry_id", "record_id", "plate"})
#: zstd: a quarter smaller than snappy for the same write and read time (measured).
COMPRESSION = "zstd"
#: Rows per Arrow batch (and Parquet row group): memory beside the sort stays a few
#: tens of MB, and row groups are of the usual size for readers that skip by statistics.
BATCH_ROWS = 262_144


class HashedFile:
    """A new private file whose SHA-256 follows what is written to it."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        self._fh = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._digest.update(data)
        self._size += len(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._fh.flush()

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def close(self) -> None:
        self._fh.close()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def __enter__(self) -> HashedFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _csv_batch(out: IO[bytes], batch: pa.RecordBatch | pa.Table, header: bool) -> None:
    csvsafe.frame(pl.DataFrame(batch)).write_csv(out, include_header=header)


def write_version_files(
    con: duckdb.DuckDBPyConnection, query: str, directory: Path
) -> tuple[int, dict[str, str]]:
    """Write ``query``'s rows (in its order) to ``directory``'s ``hotlist.parquet``
    and ``hotlist.csv``; return the row count and each file's SHA-256.

    The CSV of a batch is written on a thread of its own while the Parquet writer takes
    the same batch (both release the GIL for most of their work); one batch at a time is
    in flight, and the thread writes them in their order."""
    reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
    dictionary = [name for name in reader.schema.names if name not in NO_DICTIONARY]
    rows = 0
    with (
        HashedFile(directory / "hotlist.parquet") as parquet_file,
        HashedFile(directory / "hotlist.csv") as csv_file,
        pq.ParquetWriter(
            pa.PythonFile(parquet_file, mode="w"),
            reader.schema,
            compression=COMPRESSION,
            use_dictionary=dictionary,
        ) as parquet,
        ThreadPoolExecutor(1, thread_name_prefix="csv") as csv_thread,
    ):
        csv_out = cast(IO[bytes], csv_file)  # polars only calls write()
        in_flight: Future[None] | None = None
        for batch in reader:
            written = csv_thread.submit(_csv_batch, csv_out, batch, rows == 0)
            parquet.write_batch(batch)
            if in_flight is not None:
                in_flight.result()
            in_flight = written
            rows += batch.num_rows
        if in_flight is not None:
            in_flight.result()
        if rows == 0:  # no entries: the CSV still has its header
            _csv_batch(csv_out, reader.schema.empty_table(), True)
    hashes = {"hotlist.parquet": parquet_file.hexdigest(), "hotlist.csv": csv_file.hexdigest()}
    return rows, hashes
