"""A snapshot's chunks parsed in parallel, in file order, each checked against the entry
contract and keyed: what the stream write (:mod:`hotlist.store.stream`) reads."""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl
from pandera.errors import SchemaErrors

from contracts.models import HotlistEntry
from hotlist.keyed import LineKeyer
from hotlist.parse import ParsedFile, Snapshot

#: Chunks parsed at once beside the writer: a chunk's polars and pandera work keeps about
#: one core busy, so two keep a two-core machine's cores busy (``bench/`` measures it).
PARSE_WORKERS = 2


class EntryContractBroken(Exception):
    """Rows that passed the row contracts broke the entry contract: a defect, not bad input."""


@dataclass(frozen=True)
class EntryKeys:
    """What identifies an entry (its id, from the identity) and its line (the line key)."""

    entry_id: pl.Expr
    line: LineKeyer


def validated_chunk(snapshot: Snapshot, index: int, keys: EntryKeys) -> ParsedFile:
    """Chunk ``index`` of the snapshot, its entries checked against the entry contract, led
    by their entry id and followed by their line key."""
    chunk = snapshot.chunk(index)
    try:
        HotlistEntry.validate(chunk.entries, lazy=True)
    except SchemaErrors as exc:
        # pandera's own message quotes the failing values: record content. Name the
        # columns and checks only.
        cases = exc.failure_cases.select("column", "check").unique().rows()
        raise EntryContractBroken(
            f"{snapshot.name}: {exc.failure_cases.height} entries break the hotlist entry"
            f" contract: {sorted(f'{c}: {k}' for c, k in cases)}"
        ) from None
    entries = chunk.entries.select(keys.entry_id, pl.all()).join(
        keys.line(snapshot.chunk_lines(index)), on="line_no", how="left"
    )
    return dataclasses.replace(chunk, entries=entries)


def line_keys(snapshot: Snapshot, keys: EntryKeys) -> pl.DataFrame:
    """``(line_no, line_key_hi, line_key_lo)`` of every record line, computed in parallel."""
    with ThreadPoolExecutor(max_workers=PARSE_WORKERS, thread_name_prefix="line-keys") as pool:
        indexes = range(snapshot.chunk_count)
        return pl.concat(pool.map(lambda i: keys.line(snapshot.chunk_lines(i)), indexes))


class ParsedInOrder:
    """The snapshot's validated chunks in file order, parsed on :data:`PARSE_WORKERS`
    threads at most that many ahead of the consumer (memory stays bounded). Parsing starts
    when it is made, so the writer can do other work meanwhile; :meth:`close` stops it."""

    def __init__(self, snapshot: Snapshot, keys: EntryKeys) -> None:
        self._snapshot, self._keys = snapshot, keys
        self._indexes = iter(range(snapshot.chunk_count))
        self._pool = ThreadPoolExecutor(max_workers=PARSE_WORKERS, thread_name_prefix="parse")
        self._pending = deque(
            self._submit(i) for i in itertools.islice(self._indexes, PARSE_WORKERS)
        )

    def _submit(self, index: int) -> Future[ParsedFile]:
        return self._pool.submit(validated_chunk, self._snapshot, index, self._keys)

    def __iter__(self) -> Iterator[ParsedFile]:
        return self

    def __next__(self) -> ParsedFile:
        if not self._pending:
            raise StopIteration
        parsed = self._pending.popleft().result()
        if (following := next(self._indexes, None)) is not None:
            self._pending.append(self._submit(following))
        return parsed

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def suppress(chunk: ParsedFile, suppressed: list[str]) -> ParsedFile:
    """Drop lines of manually purged records (entries and quarantined lines alike)."""
    if not suppressed:
        return chunk
    ids = pl.Series(suppressed).implode()
    entries = chunk.entries.filter(~pl.col("record_id").is_in(ids).fill_null(False))
    quarantine = chunk.quarantine.filter(
        ~pl.col("raw_line").str.contains_any(suppressed).fill_null(False)
    )
    dropped = chunk.entries.height - entries.height + chunk.quarantine.height - quarantine.height
    excluded = chunk.excluded | {"suppressed_manual_purge": dropped}
    return dataclasses.replace(chunk, entries=entries, quarantine=quarantine, excluded=excluded)
