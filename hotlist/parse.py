"""Parse one landed file into candidate entries, quarantined rows and row issues.

The path of a file (docs/formats.md): whole-file checks (:mod:`hotlist.wholefile`) ->
lines (polars, one string column) -> header and trailer checks (here) -> chunk by chunk
(:mod:`hotlist.parse_chunk`): hit-type judgement (a line is parsed only when it is
positively of an allowed hit type; ``N`` records are dropped before anything is kept) ->
fields by the layout -> normalization (:mod:`hotlist.rows`) -> pandera contracts
(:mod:`hotlist.issues`) -> entries / quarantine (:mod:`hotlist.quarantine`) / issues.
Messages and issues name file, line, field and rule, never a value: values are record
content.

This module is the parser's public face: what the store, the ingest and the tests use is
importable from here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from hotlist.issues import contract_failures, duplicate_issues
from hotlist.layout import Layout, Marker
from hotlist.lines import read_lines
from hotlist.parse_chunk import ParsedFile, parse_chunk, sum_excluded
from hotlist.quarantine import QUARANTINE_SCHEMA, UNKNOWN_HIT_TYPE
from hotlist.wholefile import FileRejected, check_bytes, check_extract_time

__all__ = [
    "CHUNK_LINES",
    "QUARANTINE_SCHEMA",
    "UNKNOWN_HIT_TYPE",
    "FileRejected",
    "ParsedFile",
    "Snapshot",
    "contract_failures",
    "duplicate_issues",
    "parse_file",
    "read_snapshot",
    "sum_excluded",
]

#: Lines parsed at a time: bounds the memory of the wide intermediate frames (two chunks
#: are parsed at once; docs/benchmarks.md has what each size cost).
CHUNK_LINES = 200_000


def _marker_time(marker: Marker, text: str) -> dt.datetime | None:
    match = marker.pattern.match(text)
    if match is None:
        return None
    if marker.time_format is None or "time" not in match.groupdict():
        return None
    try:
        naive = dt.datetime.strptime(match["time"], marker.time_format)
    except ValueError:
        return None
    return naive.replace(tzinfo=marker.timezone or dt.UTC)


def _no_second_header(name: str, body: pl.DataFrame, header: Marker) -> None:
    """Refuse a file with a header line after line 1: two extracts run together, whose
    records are of two times (and an NCIC header would read as an ``N`` record)."""
    text = pl.col("text")
    try:  # few lines are candidates; the pattern decides on those, with a mark stripped
        candidates = body.filter(
            text.str.contains(header.pattern.pattern) | text.str.starts_with("\ufeff")
        )
    except pl.exceptions.PolarsError:  # a pattern polars cannot run: every line in Python
        candidates = body
    found = candidates.filter(
        pl.Series(
            [bool(header.pattern.match(t.lstrip("\ufeff"))) for t in candidates["text"]],
            dtype=pl.Boolean,
        )
    )["line_no"]
    if found.len():
        raise FileRejected(
            "header-repeated",
            f"{name} line {found[0]}: a second header line ({found.len()} after line 1): the"
            " file holds more than one extract run together",
        )


@functools.cache
def _parser_sources() -> tuple[Path, ...]:
    """The files whose content decides how a line is parsed and stored."""
    from hotlist.fingerprint import parser_sources

    return parser_sources()


def read_snapshot(
    path: Path,
    layout: Layout,
    feed: str,
    feed_list: str | None,
    hit_types: frozenset[str],
    fallback_time: dt.datetime,
    *,
    hash_key: bytes | None = None,
    now: dt.datetime | None = None,
) -> Snapshot:
    """Check ``path`` as a whole (bytes, line ends, header, trailer, the file's own time);
    raise :class:`FileRejected` if it is unusable. Its rows are parsed later, chunk by
    chunk (:meth:`Snapshot.chunks`).

    ``hash_key`` (the store's local key) keys the hash that stands for a quarantined line
    (:func:`hotlist.quarantine.quarantine_line_hash`); without it that hash is null. ``now`` (default: the
    clock) is what the file's time and its records' dates must not be later than."""
    name = path.name
    now = now or dt.datetime.now(dt.UTC)
    check_bytes(path)
    lines = read_lines(path)
    extract_time: dt.datetime | None = None
    body = lines
    if layout.header is not None:
        first = lines["text"][0] if lines.height else ""
        extract_time = _marker_time(layout.header, first)
        if layout.header.pattern.match(first):
            body = body.slice(1)
            if extract_time is None:
                raise FileRejected("header-time", f"{name} line 1: header time is not a valid time")
        elif layout.header.required:
            raise FileRejected(
                "header-missing",
                f"{name} line 1: expected a header matching {layout.header.pattern.pattern!r}",
            )
        _no_second_header(name, body, layout.header)
    # Blank lines are not records: the trailer counts record lines only.
    blank = pl.col("text").str.strip_chars_start() == ""
    if body.select(blank.any()).item():
        body = body.filter(~blank)
    if layout.trailer is not None:
        last = body["text"][-1] if body.height else ""
        match = layout.trailer.pattern.match(last)
        if match is None:
            if layout.trailer.required:
                raise FileRejected(
                    "trailer-missing",
                    f"{name}: no trailer line matching {layout.trailer.pattern.pattern!r}; the file is incomplete",
                )
        else:
            body = body.slice(0, body.height - 1)
            declared = int(match["count"])
            if declared != body.height:
                raise FileRejected(
                    "trailer-count",
                    f"{name}: trailer declares {declared} records, the file holds {body.height}; the file is incomplete",
                )
    check_extract_time(name, extract_time or fallback_time, now, extract_time is not None)
    return Snapshot(
        name=name,
        extract_time=extract_time or fallback_time,
        record_lines=body.height,
        body=body,
        layout=layout,
        feed=feed,
        feed_list=feed_list,
        hit_types=hit_types,
        hash_key=hash_key,
        now=now,
    )


@dataclass(frozen=True)
class Snapshot:
    """A file that passed the whole-file checks, ready to be parsed chunk by chunk."""

    name: str
    extract_time: dt.datetime
    record_lines: int
    body: pl.DataFrame  # line_no, text of the record lines
    layout: Layout
    feed: str
    feed_list: str | None
    hit_types: frozenset[str]
    #: Keys the hash of a quarantined line; a secret, so never shown.
    hash_key: bytes | None = field(default=None, repr=False, compare=False)
    #: What a record date must not be later than (plus
    #: :data:`hotlist.parse_chunk.FUTURE_DATE_TOLERANCE`).
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC), compare=False)

    @property
    def chunk_count(self) -> int:
        """Chunks of :data:`CHUNK_LINES` record lines; at least one, perhaps empty."""
        return max(-(-self.body.height // CHUNK_LINES), 1)

    def chunk_lines(self, index: int) -> pl.DataFrame:
        """The ``index``-th chunk of record lines (``line_no, text``)."""
        return self.body.slice(index * CHUNK_LINES, CHUNK_LINES)

    def chunk(self, index: int) -> ParsedFile:
        """Parse the ``index``-th chunk of record lines (chunks are independent)."""
        return parse_chunk(
            self.chunk_lines(index),
            self.layout,
            self.feed,
            self.feed_list,
            self.hit_types,
            self.hash_key,
            self.now,
        )

    def restricted(self, line_nos: pl.Series) -> Snapshot:
        """The same file with only the record lines ``line_nos`` left to parse."""
        return dataclasses.replace(
            self, body=self.body.filter(pl.col("line_no").is_in(line_nos.implode()))
        )

    @functools.cached_property
    def parser(self) -> str:
        """What a line's parse depends on besides the line: the feed, its layout and hit
        types, the code tables, the parsing code and its libraries, as one SHA-256.

        A line parsed under the same value gives the same entry and warnings again: the
        store copies those of an unchanged line instead of parsing it again.
        """
        digest = hashlib.sha256()
        for part in (self.feed, self.feed_list, repr(self.layout), sorted(self.hit_types)):
            digest.update(repr(part).encode() + b"\0")
        for package in ("polars", "pandera", "polars-hash", "duckdb"):
            digest.update(f"{package}={importlib.metadata.version(package)}\0".encode())
        for source in _parser_sources():
            digest.update(source.read_bytes() + b"\0")
        return digest.hexdigest()

    def chunks(self) -> Iterator[ParsedFile]:
        """Parse the record lines chunk by chunk, so memory stays bounded."""
        return (self.chunk(i) for i in range(self.chunk_count))


def parse_file(
    path: Path,
    layout: Layout,
    feed: str,
    feed_list: str | None,
    hit_types: frozenset[str],
    fallback_time: dt.datetime,
    *,
    hash_key: bytes | None = None,
    now: dt.datetime | None = None,
) -> ParsedFile:
    """Read a whole file into one :class:`ParsedFile` (the store reads chunk by chunk)."""
    snapshot = read_snapshot(
        path, layout, feed, feed_list, hit_types, fallback_time, hash_key=hash_key, now=now
    )
    chunks = list(snapshot.chunks())
    entries = pl.concat([c.entries for c in chunks])
    # One entry per identity: a later line with the same identity is reported, not loaded.
    duplicate = ~pl.struct(list(layout.identity)).is_first_distinct()
    dupes = entries.filter(duplicate)
    return ParsedFile(
        name=snapshot.name,
        extract_time=snapshot.extract_time,
        record_lines=snapshot.record_lines,
        entries=entries.filter(~duplicate),
        quarantine=pl.concat([c.quarantine for c in chunks]),
        issues=pl.concat([*(c.issues for c in chunks), duplicate_issues(dupes)]).sort("line_no"),
        excluded=sum_excluded([c.excluded for c in chunks]),
    )
