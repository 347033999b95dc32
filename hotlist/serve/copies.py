"""The reference client's local copy, and how a version or a delta is applied to it.

A copy is one file in ``OUT`` (``OUT/state.json`` names its version and format):

- ``hotlist.parquet`` (:class:`ParquetCopy`, the default): a full version is the
  server's file as it came; a delta rewrites the copy, and the copy it replaces is
  scrubbed. Its cost follows the size of the copy.
- ``hotlist.lines`` (:class:`hotlist.serve.copy_lines.LinesCopy`): one fixed-width
  record per entry, a delta edited in place; its cost follows the size of the delta.

Whichever format, a file that takes the copy's place is written under a temporary
name, fsynced and checked whole first, then renamed in; the copy it replaced is
scrubbed (overwritten, fsynced, unlinked: :func:`hotlist.scrub.scrub_unlink`), as is a
half-written one, and a copy of the other format left in ``OUT`` (a directory that
changed format keeps no stale copy).

The copy holds record content wherever it is kept, so its files are mode 0600 even in a
directory the operator made world-readable; a directory the client creates is 0700.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hotlist.private import PRIVATE_FILE, make_private, temporary_path, write_private
from hotlist.scrub import scrub_unlink

#: The file each copy format keeps in ``OUT``.
COPY_FILES = {"parquet": "hotlist.parquet", "lines": "hotlist.lines"}
#: The format of a new copy: the lines copy, whose apply follows the delta (a Parquet
#: copy is rewritten whole by each delta: 53-59 s for fifty followers of the 2M-entry
#: list against the 30 s goal, docs/freshness.md).
NEW_COPY_FORMAT = "lines"


def format_in(out: Path) -> str:
    """The format of the copy ``out`` already holds, so that a directory an integration
    reads keeps its file; :data:`NEW_COPY_FORMAT` where it holds none. The file there
    decides; with both (a change of format cut short) ``state.json`` does, and a state
    that names none is an older client's, which kept Parquet."""
    state = _state(out)
    # A state written by an older client names no format (it kept Parquet); one that is
    # missing or unreadable tells nothing.
    named = state.get("format", "parquet") if state else None
    if isinstance(named, str) and named not in COPY_FILES:
        raise UnknownCopyFormat(
            f"{out} holds a copy of format {named[:40]!r}, which this client does not keep:"
            " pull it with the client that wrote it, or scrub that directory first"
        )
    held = [f for f, name in COPY_FILES.items() if (out / name).is_file()]
    if len(held) == 1:
        return held[0]
    if not held:
        return NEW_COPY_FORMAT
    return named if isinstance(named, str) and named in COPY_FILES else NEW_COPY_FORMAT


def _state(out: Path) -> dict[str, Any]:
    """``out/state.json`` as written by :meth:`Copy.save`; empty when it is missing or is
    not such an object (torn, garbled, hostile): the copy then has no version to build on,
    and the next pull brings a full version."""
    try:
        state = json.loads((out / "state.json").read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return state if isinstance(state, dict) else {}


class CopyUnreadable(Exception):
    """A copy file that is not whole (the message says what, never what it holds)."""


class UnknownCopyFormat(Exception):
    """``state.json`` names a copy format this client does not keep (a newer client's):
    keeping another copy beside it would leave that one stale, with removed records."""


class Copy:
    """The local copy in ``out``: its file, its version, whether that version was acked.

    A subclass names its format and says how a file of it is checked whole
    (:meth:`_entries_in`) and how a delta is applied (:meth:`apply_delta`)."""

    format: ClassVar[str]

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.out = out
        self.state_file, self.path = out / "state.json", out / COPY_FILES[self.format]
        self.replaced = self.path.with_name(self.path.name + ".replaced")
        for existing in (self.path, self.state_file):  # a copy left 0644 by an older client
            make_private(existing)
        self._finish_replacement()
        scrub_unlink(temporary_path(self.path))  # a new copy a killed run left half-written
        exists = self.state_file.exists() and self.path.exists()
        state = _state(out) if exists else {}
        # A copy of another format, or one an apply was editing when it was stopped, has
        # no version this format can build on: the next pull brings a full version.
        if state.get("format", "parquet") != self.format or "applying" in state:
            state = {}
        self.state = state

    @property
    def version(self) -> int | None:
        found = self.state.get("version")
        return None if found is None else int(found)

    @property
    def acked(self) -> bool:
        return bool(self.state.get("acked", True))

    def _finish_replacement(self) -> None:
        """The link to the old copy, kept until it is scrubbed: scrub it, unless a run was
        killed before the new copy took its place (then it is the copy itself)."""
        try:
            old = os.stat(self.replaced, follow_symlinks=False)
        except FileNotFoundError:
            return
        try:
            current = os.stat(self.path, follow_symlinks=False)
            same = (old.st_dev, old.st_ino) == (current.st_dev, current.st_ino)
        except FileNotFoundError:
            same = False
        if same:
            self.replaced.unlink()
        else:
            scrub_unlink(self.replaced)

    def _entries_in(self, written: Path) -> int:
        """How many entries the file just written holds; CopyUnreadable (or the reader's
        own error) when it is not a whole file of this format."""
        raise NotImplementedError

    def replace(self, write: Callable[[BinaryIO], object], version: int) -> int:
        """Write the new copy (``write`` fills a private file), fsync it, put it in place,
        then scrub the copy it replaced; return how many entries it holds."""
        tmp = temporary_path(self.path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        try:
            with os.fdopen(os.open(tmp, flags, PRIVATE_FILE), "wb") as fh:
                os.fchmod(fh.fileno(), PRIVATE_FILE)
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            entries = self._entries_in(tmp)  # a whole file, or no change
        except BaseException:
            scrub_unlink(tmp)
            raise
        had_copy = self.path.exists()
        if had_copy:
            os.link(self.path, self.replaced)
        os.replace(tmp, self.path)
        self.save(version, acked=False)
        if had_copy:
            scrub_unlink(self.replaced)
        self._scrub_other_formats()
        return entries

    def _scrub_other_formats(self) -> None:
        """The other format's copy, its link aside and its half-written file (a directory
        of such a name is not a copy, and is left)."""
        for name in COPY_FILES.values():
            if name != self.path.name:
                for path in (self.out / name, self.out / f"{name}.replaced"):
                    if path.is_symlink() or not path.is_dir():
                        scrub_unlink(path)
                scrub_unlink(temporary_path(self.out / name))

    def save(self, version: int, acked: bool, applying: int | None = None) -> None:
        """Record the copy's version; ``applying`` while a delta to that version is being
        written into the copy in place (a copy stopped then is not trusted again)."""
        state: dict[str, Any] = {"version": version, "acked": acked, "format": self.format}
        if applying is not None:
            state["applying"] = applying
        self.state = state
        write_private(self.state_file, json.dumps(self.state))

    def apply_full(self, body: bytes, version: int) -> int:
        """Make the copy the full version ``body`` (the server's Parquet file)."""
        raise NotImplementedError

    def apply_delta(self, gone: pl.Series, fresh: pl.DataFrame, version: int) -> int:
        """Remove the ``gone`` entry ids, insert or replace the ``fresh`` entries."""
        raise NotImplementedError


class ParquetCopy(Copy):
    """``OUT/hotlist.parquet``: the server's file, then each delta written into a new one."""

    format = "parquet"

    def _entries_in(self, written: Path) -> int:
        return int(pq.read_metadata(written).num_rows)

    def apply_full(self, body: bytes, version: int) -> int:
        return self.replace(lambda fh: fh.write(body), version)

    def apply_delta(self, gone: pl.Series, fresh: pl.DataFrame, version: int) -> int:
        touched = pl.concat([gone, fresh["entry_id"]]).to_arrow()
        current = self.path
        return self.replace(lambda fh: _write_delta(fh, current, touched, fresh), version)


#: Rows a row group of the copy holds at most after a delta; row groups that shrank
#: below it are merged (with the upserts) so that deltas do not leave slivers.
ROW_GROUP_ROWS = 122_880


def _dictionary_columns(source: pq.ParquetFile) -> list[str]:
    """The string columns the copy keeps dictionary-encoded: the ones its first row
    group stores with a dictionary page (low-cardinality: feed, state, make ...)."""
    meta = source.metadata
    if meta.num_row_groups == 0:
        return []
    group = meta.row_group(0)
    strings = {f.name for f in source.schema_arrow if _is_text(f.type)}
    return [
        group.column(i).path_in_schema
        for i in range(group.num_columns)
        if group.column(i).has_dictionary_page and group.column(i).path_in_schema in strings
    ]


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _write_delta(fh: BinaryIO, current: Path, touched: pa.Array, fresh: pl.DataFrame) -> None:
    """The copy without the ``touched`` entries, then ``fresh``, written to ``fh`` one row
    group at a time. Low-cardinality string columns stay dictionary-encoded from the
    page read to the page written (never decoded into strings), pages are uncompressed
    and carry no statistics: each of these cut the CPU of an apply, which is what fifty
    followers on one host queue for (docs/freshness.md, 2026-12-02)."""
    dictionary = _dictionary_columns(pq.ParquetFile(current))
    source = pq.ParquetFile(current, read_dictionary=dictionary)
    schema = source.schema_arrow
    upserts = fresh.to_arrow().select(schema.names).cast(schema)
    options: dict[str, Any] = {
        "compression": "none",
        "write_statistics": False,
        "use_dictionary": dictionary or False,
        "store_schema": False,  # readers see strings, as in the server's file, not categories
    }
    with pq.ParquetWriter(fh, schema, **options) as writer:
        pending: list[pa.Table] = []
        rows = 0
        kept = (
            _without(source.read_row_group(i, use_threads=False), touched)
            for i in range(source.num_row_groups)
        )
        for group in itertools.chain(kept, [upserts]):
            if pending and rows + group.num_rows > ROW_GROUP_ROWS:
                _write_group(writer, pending)
                pending, rows = [], 0
            pending.append(group)
            rows += group.num_rows
        _write_group(writer, pending)


def _without(group: pa.Table, touched: pa.Array) -> pa.Table:
    """The row group without the touched entries, each dictionary left with the values
    its rows still use: a value only a removed record had must not stay in the new
    copy's dictionary page (the copy it replaces is scrubbed; this one must be clean)."""
    kept = group.filter(pc.invert(pc.is_in(group["entry_id"], value_set=touched)))
    columns = [
        _compact(column.combine_chunks()) if pa.types.is_dictionary(column.type) else column
        for column in kept.columns
    ]
    return pa.table(columns, schema=kept.schema)


def _compact(column: pa.DictionaryArray) -> pa.DictionaryArray:
    used = pc.unique(column.indices).drop_null()
    if len(used) == len(column.dictionary):  # every value still used (feed, state ...)
        return column
    indices = pc.index_in(column.indices, value_set=used).cast(column.indices.type)
    return pa.DictionaryArray.from_arrays(indices, column.dictionary.take(used))


def _write_group(writer: pq.ParquetWriter, tables: list[pa.Table]) -> None:
    """One row group (several tables merged share one dictionary per column)."""
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables).unify_dictionaries()
    if table.num_rows:
        writer.write_table(table, row_group_size=max(table.num_rows, 1))
