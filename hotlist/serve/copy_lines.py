"""A copy whose apply costs what the delta costs: fixed-width records, edited in place.

``hotlist pull --copy-format lines`` keeps ``OUT/hotlist.lines``:

- **line 1, a header**: JSON, padded with spaces to ``header_bytes`` and ending in a
  newline: ``{"format": "hotlist-lines/1", "record_bytes": R, "header_bytes": H,
  "columns": [{"name", "type", "start", "width"}, ...]}`` (``start`` counts from the
  record's first byte; ``type`` is the column's type in the server's file);
- **then one slot of R bytes per entry**: each column's value as UTF-8, left-aligned at
  its start and padded with spaces to its width, spaces up to the last byte, a newline.
  A null is all spaces (the published columns hold no empty strings, and no value ends
  in a space); dates are ``YYYY-MM-DD``, numbers in decimal.
- **a free slot is all spaces and the newline**: the slot of a removed entry, until an
  added entry takes it. Readers skip slots whose ``entry_id`` is blank.
- R is a power of two (64 to 4096) and H a multiple of it, so no slot straddles a 4 KiB
  page: each slot is written whole by one ``pwrite``, and a reader that reads while a
  delta is applied sees each record before or after, never half of each.

A delta is applied in place: ``state.json`` first says which version is being applied
(a copy stopped midway is not trusted again: the next pull brings a full version, and
the file it replaces is scrubbed); then each removed entry's slot is overwritten with
spaces, a changed entry is overwritten in its own slot, an added entry takes a free
slot (the ones just freed first) or a new one at the end; then the file is fsynced and
``state.json`` names the new version. A removed record's bytes are overwritten where
they lie, on the blocks that held them (the erasure rule of the server's files:
overwrite, then fsync), and no block that held one is ever freed: the cost follows the
delta (a slot per changed entry, and the pages they fall on), not the copy.

The client keeps the copy's index (entry id to slot) in memory, built when it opens the
copy. A full version, or a delta with a value wider than its column (a longer code
than any before), is written whole into a new file with the widths it needs, and the
file it replaces is scrubbed, as :class:`hotlist.serve.copies.ParquetCopy` does.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import mmap
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hotlist.serve.copies import Copy, CopyUnreadable

log = logging.getLogger("hotlist.pull")

FORMAT = "hotlist-lines/1"
#: The narrowest each published column is laid out, so that a delta with a longer code
#: than the version it follows seldom needs the copy written whole again.
MIN_WIDTHS = {
    "entry_id": 20, "feed": 4, "list": 24, "record_id": 10, "plate": 10, "state": 2,
    "record_date": 10, "ori": 9, "county": 3, "plate_year": 4, "plate_type": 2,
    "vehicle_year": 4, "make": 4, "model": 3, "style": 2, "colour": 7,
}  # fmt: skip
#: The column types a slot can hold, by the name the header gives them.
TYPES: dict[str, pl.DataType] = {
    "String": pl.String(),
    "Int16": pl.Int16(),
    "Int32": pl.Int32(),
    "Int64": pl.Int64(),
    "Date": pl.Date(),
}
PAGE = 4096
#: Rows encoded at a time when a whole copy is written.
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    start: int
    width: int


@dataclass(frozen=True)
class Layout:
    fields: tuple[Field, ...]
    record_bytes: int
    header_bytes: int

    @property
    def blank(self) -> bytes:
        return b" " * (self.record_bytes - 1) + b"\n"

    def header(self) -> bytes:
        return _header(self.fields, self.record_bytes, self.header_bytes)

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {f.name: TYPES[f.type] for f in self.fields}


def _header(fields: tuple[Field, ...], record_bytes: int, header_bytes: int) -> bytes:
    return _header_json(fields, record_bytes, header_bytes).ljust(header_bytes - 1) + b"\n"


def _header_json(fields: tuple[Field, ...], record_bytes: int, header_bytes: int) -> bytes:
    return json.dumps(
        {
            "format": FORMAT,
            "record_bytes": record_bytes,
            "header_bytes": header_bytes,
            "columns": [vars(f) for f in fields],
        },
        separators=(",", ":"),
    ).encode()


def layout_for(schema: dict[str, pl.DataType], widths: dict[str, int]) -> Layout:
    """The layout of these columns, each at least as wide as ``widths`` says."""
    fields, start = [], 0
    for name, kind in schema.items():
        type_name = next((n for n, t in TYPES.items() if t == kind), None)
        if type_name is None:
            raise CopyUnreadable(f"column {name!r}: type {kind} has no fixed-width form")
        width = max(widths.get(name, 1), MIN_WIDTHS.get(name, 1), 1)
        fields.append(Field(name, type_name, start, width))
        start += width
    record = 64
    while record < start + 1 and record < PAGE:
        record *= 2
    if record < start + 1:
        record = -(-(start + 1) // PAGE) * PAGE
    longest = len(_header_json(tuple(fields), record, 10**9)) + 1  # the newline
    return Layout(tuple(fields), record, -(-longest // record) * record)


def read_layout(head: bytes) -> Layout:
    """The layout a copy's first line gives; CopyUnreadable when it is not one."""
    end = head.find(b"\n")
    if end < 0:
        raise CopyUnreadable("no header line")
    try:
        header = json.loads(head[:end])
        fields = tuple(
            Field(str(c["name"]), str(c["type"]), int(c["start"]), int(c["width"]))
            for c in header["columns"]
        )
        record, size = int(header["record_bytes"]), int(header["header_bytes"])
    except (ValueError, KeyError, TypeError):
        raise CopyUnreadable("the header line is not this format's") from None
    if header.get("format") != FORMAT:
        raise CopyUnreadable("the header names another format")
    layout = Layout(fields, record, size)
    ends = [f.start + f.width for f in fields]
    if (
        record < 64
        or (record <= PAGE and PAGE % record)
        or size % record
        or end + 1 != size
        or [f.start for f in fields] != [0, *ends[:-1]]
        or ends[-1] >= record
        or len({f.name for f in fields}) != len(fields)
        or any(f.type not in TYPES or f.width < 1 for f in fields)
        or layout.schema.get("entry_id") != pl.Int64()
    ):
        raise CopyUnreadable("the header's layout is not a possible one")
    return layout


def widths_of(frame: pl.DataFrame) -> dict[str, int]:
    """The bytes each column's longest value takes as text."""
    lengths = frame.select(pl.col(c).cast(pl.String).str.len_bytes().max() for c in frame.columns)
    return {c: int(v or 0) for c, v in zip(frame.columns, lengths.row(0), strict=True)}


def encode(frame: pl.DataFrame, layout: Layout) -> bytes | None:
    """The frame's rows as slots, in order; None when a value does not fit its column."""
    if frame.height == 0:
        return b""
    if frame.schema != pl.Schema(layout.schema):
        return None
    widths = widths_of(frame)
    if any(widths[f.name] > f.width for f in layout.fields):
        return None
    tail = " " * (layout.record_bytes - 1 - sum(f.width for f in layout.fields)) + "\n"
    rows = frame.select(
        pl.concat_str(
            [
                pl.col(f.name).cast(pl.String).fill_null("").str.pad_end(f.width)
                for f in layout.fields
            ]
            + [pl.lit(tail)]
        )
    ).to_series()
    data = _text_bytes(rows)
    if len(data) == frame.height * layout.record_bytes:
        return data
    # pad_end counts characters: a value outside ASCII is padded in bytes, row by row.
    return b"".join(_slot(row, layout) for row in frame.iter_rows())


def _text_bytes(rows: pl.Series) -> bytes:
    """The strings of ``rows`` end to end, as UTF-8 (from the Arrow buffer, not one
    Python string per row)."""
    array = rows.to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    assert isinstance(array, pa.LargeStringArray)
    offsets = array.buffers()[1]
    assert offsets is not None
    positions = memoryview(offsets).cast("q")
    first, last = positions[array.offset], positions[array.offset + len(array)]
    values = array.buffers()[2]
    return b"" if values is None else values.slice(first, last - first).to_pybytes()


def _slot(values: tuple[Any, ...], layout: Layout) -> bytes:
    out = bytearray(layout.blank)
    for field, value in zip(layout.fields, values, strict=True):
        if value is not None:
            text = str(value).encode("utf-8")
            out[field.start : field.start + len(text)] = text
    return bytes(out)


def _slots(data: pa.Buffer, layout: Layout) -> pa.FixedSizeBinaryArray:
    body = data.slice(layout.header_bytes)
    if body.size % layout.record_bytes:
        raise CopyUnreadable("the file ends inside a slot")
    kind = pa.binary(layout.record_bytes)
    array = pa.Array.from_buffers(kind, body.size // layout.record_bytes, [None, body])
    assert isinstance(array, pa.FixedSizeBinaryArray)
    return array


def _column(slots: pa.Array, field: Field) -> pa.Array:
    """One column of the slots as trimmed text; empty where the slot holds no value."""
    raw = pc.binary_slice(slots, field.start, field.start + field.width)
    try:
        text = pc.cast(raw, pa.string())
    except pa.ArrowInvalid:
        raise CopyUnreadable(f"column {field.name!r}: bytes that are not UTF-8") from None
    return pc.utf8_rtrim(text, characters=" ")


def decode(slots: pa.Array, layout: Layout) -> pl.DataFrame:
    """The entries these slots hold (free slots left out), in slot order."""
    ids = _column(slots, _id(layout))
    held = pc.not_equal(ids, "")
    columns = {}
    for field in layout.fields:
        text = pl.from_arrow(pc.filter(_column(slots, field), held))
        assert isinstance(text, pl.Series)
        text = text.replace("", None)
        try:
            columns[field.name] = _typed(text, field.type)
        except pl.exceptions.PolarsError:
            raise CopyUnreadable(f"column {field.name!r}: a value not of its type") from None
    return pl.DataFrame(columns)


def _typed(text: pl.Series, type_name: str) -> pl.Series:
    if type_name == "String":
        return text
    if type_name == "Date":
        return text.str.to_date("%Y-%m-%d", strict=True)
    return text.cast(TYPES[type_name], strict=True)


def _id(layout: Layout) -> Field:
    return next(f for f in layout.fields if f.name == "entry_id")


def read_lines(path: Path) -> pl.DataFrame:
    """The entries a ``hotlist.lines`` copy holds, with the server's column types."""
    with pa.memory_map(str(path)) as source:
        data = source.read_buffer()
        layout = read_layout(data.slice(0, min(data.size, 1 << 16)).to_pybytes())
        return decode(_slots(data, layout), layout)


def read_batches(path: Path, rows: int) -> Iterator[pl.DataFrame]:
    """The entries of a ``hotlist.lines`` copy, ``rows`` slots at a time (bounded memory
    for a copy of any size)."""
    with pa.memory_map(str(path)) as source:
        data = source.read_buffer()
        layout = read_layout(data.slice(0, min(data.size, 1 << 16)).to_pybytes())
        slots = _slots(data, layout)
        for start in range(0, len(slots), rows):
            yield decode(slots.slice(start, rows), layout)


@dataclass
class _Scan:
    """What the client keeps of an open copy: its layout, which slot holds which entry,
    the free slots, and how many slots the file has."""

    layout: Layout
    index: pl.DataFrame  # entry_id, slot
    free: list[int]
    slots: int


def scan(path: Path) -> _Scan:
    """Read a copy's slots into an index; CopyUnreadable when the file is not whole (a
    slot without its newline, a free slot not blank, an entry id twice ...)."""
    with pa.memory_map(str(path)) as source:
        data = source.read_buffer()
        layout = read_layout(data.slice(0, min(data.size, 1 << 16)).to_pybytes())
        slots = _slots(data, layout)
        last = pc.binary_slice(slots, layout.record_bytes - 1, layout.record_bytes)
        if not pc.all(pc.equal(last, pa.scalar(b"\n", pa.binary())), min_count=0).as_py():
            raise CopyUnreadable("a slot that does not end in a newline")
        ids = _column(slots, _id(layout))
        free = pc.equal(ids, "")
        blank = pa.scalar(layout.blank, pa.binary(layout.record_bytes))
        if not pc.all(pc.equal(pc.filter(slots, free), blank), min_count=0).as_py():
            raise CopyUnreadable("a free slot that is not blank")
        positions = pa.array(range(len(slots)), pa.int64())
        try:
            held = pc.cast(pc.filter(ids, pc.invert(free)), pa.int64())
        except pa.ArrowInvalid:
            raise CopyUnreadable("an entry id that is not a number") from None
        index = pl.DataFrame(
            {"entry_id": held, "slot": pc.filter(positions, pc.invert(free))},
            schema={"entry_id": pl.Int64, "slot": pl.Int64},
        )
        if index["entry_id"].n_unique() != index.height:
            raise CopyUnreadable("an entry id in two slots")
        return _Scan(layout, index, pc.filter(positions, free).to_pylist(), len(slots))


class _TooWide(Exception):
    """A value wider than its column in the layout being written."""


class LinesCopy(Copy):
    """``OUT/hotlist.lines``: fixed-width slots, each delta written in place."""

    format = "lines"

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        self._open: _Scan | None = None
        self._written: _Scan | None = None
        if self.version is not None:
            try:
                self._open = scan(self.path)
            except (CopyUnreadable, OSError) as exc:
                log.warning(
                    "the copy in %s is not whole (%s): a full version replaces it", out, exc
                )
                self.state = {}

    def _entries_in(self, written: Path) -> int:
        built = self._written
        assert built is not None
        size = built.layout.header_bytes + built.slots * built.layout.record_bytes
        if written.stat().st_size != size:
            raise CopyUnreadable("the file written is not the size its slots make")
        return built.index.height

    def replace(self, write: Any, version: int) -> int:
        entries = super().replace(write, version)
        self._open, self._written = self._written, None
        return entries

    def apply_full(self, body: bytes, version: int) -> int:
        source = pq.ParquetFile(io.BytesIO(body))  # a cut-off body fails here, copy untouched

        def frames() -> Iterator[pl.DataFrame]:
            for batch in source.iter_batches(BATCH_ROWS, use_threads=False):
                yield pl.DataFrame(pl.from_arrow(batch))

        schema = dict(pl.DataFrame(pl.from_arrow(source.schema_arrow.empty_table())).schema)
        try:
            return self._write_whole(layout_for(schema, {}), frames(), version)
        except _TooWide:  # a value wider than the usual widths: measure them all first
            widths: dict[str, int] = {}
            for frame in frames():
                for name, width in widths_of(frame).items():
                    widths[name] = max(width, widths.get(name, 0))
            return self._write_whole(layout_for(schema, widths), frames(), version)

    def _write_whole(self, layout: Layout, frames: Iterable[pl.DataFrame], version: int) -> int:
        """A new file of ``frames`` in this layout in the copy's place (the old one
        scrubbed); _TooWide when a value does not fit it."""
        ids: list[pl.Series] = []

        def write(fh: BinaryIO) -> None:
            fh.write(layout.header())
            for frame in frames:
                data = encode(frame, layout)
                if data is None:
                    raise _TooWide
                fh.write(data)
                ids.append(frame["entry_id"].cast(pl.Int64))
            held = pl.concat(ids) if ids else pl.Series("entry_id", [], pl.Int64)
            if held.n_unique() != held.len():
                raise CopyUnreadable("an entry id twice in the version")
            slots = pl.int_range(0, held.len(), dtype=pl.Int64, eager=True)
            index = pl.DataFrame({"entry_id": held, "slot": slots})
            self._written = _Scan(layout, index, [], held.len())

        return self.replace(write, version)

    def apply_delta(self, gone: pl.Series, fresh: pl.DataFrame, version: int) -> int:
        opened = self._open
        assert opened is not None  # a copy with a version was scanned when it was opened
        fresh = fresh.unique("entry_id", keep="last", maintain_order=True)
        records = _fitted(fresh, opened.layout)
        if records is None:
            return self._write_wider(gone, fresh, version)
        upserted = fresh["entry_id"].cast(pl.Int64)
        removed = gone.cast(pl.Int64).filter(~gone.cast(pl.Int64).is_in(upserted.implode()))
        touched = opened.index["entry_id"].is_in(pl.concat([removed, upserted]).implode())
        hits, kept = opened.index.filter(touched), opened.index.filter(~touched)
        freed = hits.filter(pl.col("entry_id").is_in(removed.implode()))["slot"].to_list()
        placed = (
            pl.DataFrame({"entry_id": upserted})
            .join(hits, on="entry_id", how="left", maintain_order="left")["slot"]
            .to_list()
        )
        free = opened.free[::-1] + freed[::-1]  # popped from the end: the ones just freed first
        slots = opened.slots
        for i, slot in enumerate(placed):
            if slot is None:
                if free:
                    placed[i] = free.pop()
                else:
                    placed[i], slots = slots, slots + 1
        taken = set(placed)
        blanked = [s for s in freed if s not in taken]
        self.save(self.version or 0, self.acked, applying=version)
        self._write_slots(opened.layout, records, placed, blanked, slots)
        added = pl.DataFrame({"entry_id": upserted, "slot": pl.Series(placed, dtype=pl.Int64)})
        self._open = _Scan(opened.layout, pl.concat([kept, added]), sorted(free), slots)
        self.save(version, acked=False)
        return self._open.index.height

    def _write_slots(
        self, layout: Layout, records: bytes, placed: list[int], blanked: list[int], slots: int
    ) -> None:
        """Each record into its slot, each freed slot blanked, all fsynced. Through a
        shared mapping of the file: a page fault per page written, where a ``pwrite`` per
        slot cost 4-5 times the CPU (docs/freshness.md, 2026-12-03 (late morning))."""
        size, at = layout.record_bytes, layout.header_bytes
        end = at + slots * size
        fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW)
        try:
            if os.fstat(fd).st_size < end:  # slots added at the end
                os.ftruncate(fd, end)
            source, blank = memoryview(records), layout.blank
            writes = sorted(
                [(s, i) for i, s in enumerate(placed)] + [(s, -1) for s in blanked]
            )  # in file order
            with mmap.mmap(fd, end) as view:
                for slot, i in writes:
                    start = at + slot * size
                    view[start : start + size] = (
                        blank if i < 0 else source[i * size : (i + 1) * size]
                    )
            # The mapping is gone, its dirty pages are the file's: fsync writes them, and
            # lets other threads run meanwhile. mmap.flush() (msync) holds the GIL while
            # the disk writes, so fifty followers in one process wrote one at a time.
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_wider(self, gone: pl.Series, fresh: pl.DataFrame, version: int) -> int:
        """A delta a slot cannot hold (a value wider than its column, other columns):
        the copy written whole with the widths it needs, the old file scrubbed. The old
        file is read a batch at a time, as it is written: its own widths bound its values,
        so only the delta's are measured."""
        opened = self._open
        assert opened is not None
        touched = pl.concat([gone.cast(pl.Int64), fresh["entry_id"].cast(pl.Int64)]).implode()
        empty = pl.DataFrame(schema=opened.layout.schema)
        schema = pl.concat([empty, fresh.clear()], how="diagonal_relaxed").schema
        widths = {f.name: f.width for f in opened.layout.fields}
        for name, width in widths_of(fresh).items():
            widths[name] = max(width, widths.get(name, 0))
        layout = layout_for(dict(schema), widths)

        def frames() -> Iterator[pl.DataFrame]:
            kept = (
                part.filter(~pl.col("entry_id").is_in(touched))
                for part in read_batches(self.path, BATCH_ROWS)
            )
            for part in itertools.chain(kept, _batches(fresh)):
                yield pl.concat([schema.to_frame(), part], how="diagonal_relaxed").select(
                    schema.names()
                )

        return self._write_whole(layout, frames(), version)


def _fitted(fresh: pl.DataFrame, layout: Layout) -> bytes | None:
    """The entries as slots of this layout; None when they have other columns, or a value
    that is not of its column's type or wider than it."""
    if set(fresh.columns) != set(layout.schema):
        return None
    try:
        typed = fresh.select(layout.schema.keys()).cast(pl.Schema(layout.schema))
    except pl.exceptions.PolarsError:
        return None
    return encode(typed, layout)


def _batches(frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
    for start in range(0, frame.height, BATCH_ROWS):
        yield frame.slice(start, BATCH_ROWS)
