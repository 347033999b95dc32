"""Searching a file for the content of removed records, whatever its format.

A file is classified by its first bytes, not its name: a Parquet file (any codec) is read
as a table; gzip, bzip2, xz and zip are decompressed (members of a zip one by one, nested
compression too); everything else is searched as raw bytes for every marker in UTF-8,
UTF-16 and UTF-32 (either byte order, with or without a BOM), so text written in a wide
encoding is no hiding place. What cannot be read or decoded raises :class:`Unverifiable`:
the caller reports it, never passes it as clean.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote

import polars as pl

from hotlist import sqlite_cells
from hotlist.chance import ENCODINGS, ESCAPE_CHARS, Edge, Escape, clear, encoded_edges, stands
from hotlist.prefect_words import PrefectStates
from hotlist.sqlite_times import OwnTimes

#: Plates shorter than this are matched in structured fields only: in raw bytes and free
#: text they would match by chance.
MIN_SCAN_LEN = 5
#: Raw bytes are searched in blocks of this size, overlapping by the longest pattern.
BLOCK = 16 << 20
#: Columns that hold free text (a whole upstream line, a deletion report's sealed texts:
#: :mod:`hotlist.report_seals`): searched for markers inside.
FREE_TEXT = frozenset({"raw_line", "report_text"})
#: Raw bytes of many files are searched together in batches of about this size: building
#: the automaton (every marker in every encoding) costs more than searching 16 MB with it,
#: and polars builds it anew for each search.
BATCH = 2 * BLOCK
#: Bytes of the widest character of :data:`ENCODINGS` (UTF-32).
EDGE = 4
#: Bytes of context an occurrence is judged with (:func:`~hotlist.chance.edges`), before and after it, in
#: the widest encoding: an escape before it, two characters after it.
BEFORE = ESCAPE_CHARS * EDGE
AFTER = 2 * EDGE

PARQUET = b"PAR1"
DUCKDB = b"DUCK"  # at offset 8 of a DuckDB database file
_COMPRESSED: dict[bytes, tuple[str, Callable[[Any], Any]]] = {
    b"\x1f\x8b": ("gzip", lambda fh: gzip.GzipFile(fileobj=fh)),
    b"BZh": ("bzip2", lambda fh: bz2.BZ2File(fh)),
    b"\xfd7zXZ\x00": ("xz", lambda fh: lzma.LZMAFile(fh)),  # noqa: SIM115 (closed with fh)
}
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_UNDECODED = {
    b"\x28\xb5\x2f\xfd": "zstd",
    b"7z\xbc\xaf\x27\x1c": "7z",
    b"\x04\x22\x4d\x18": "lz4",
}
#: How deep compressed files nested inside each other are opened.
MAX_DEPTH = 4


class Unverifiable(Exception):
    """A file (or a member of one) that could not be read or decoded: never clean."""


def raw_patterns(markers: list[str]) -> list[bytes]:
    """The byte patterns of markers long enough to search raw bytes for, in every encoding."""
    return sorted({m.encode(enc) for m in markers if len(m) >= MIN_SCAN_LEN for enc in ENCODINGS})


def sniff(head: bytes) -> str:
    """What the first bytes of a file say it is: parquet, duckdb, zip, a compression, or raw."""
    if head.startswith(PARQUET):
        return "parquet"
    if head[8:12] == DUCKDB:
        return "duckdb"
    if head.startswith(_ZIP):
        return "zip"
    for magic, (name, _) in _COMPRESSED.items():
        if head.startswith(magic):
            return name
    for magic, name in _UNDECODED.items():
        if head.startswith(magic):
            return name
    return "raw"


class ByteSearch:
    """Streams of bytes searched for any of a set of patterns (Aho-Corasick, in polars).

    A block that holds a pattern where it cannot be a plate only (:func:`~hotlist.chance.edges`: a plate of
    digits inside a longer number, say) does not hit."""

    def __init__(self, patterns: list[bytes]) -> None:
        self.patterns = [p.decode("latin-1") for p in patterns]
        self.overlap = max((len(p) for p in patterns), default=0)
        # Each pattern as polars holds it: the UTF-8 of its latin-1 text, in which its
        # occurrences' offsets are counted. How an occurrence is judged is worked out for
        # the patterns that occur, when they do.
        self._views = frozenset(p.encode() for p in self.patterns)
        self._lengths = sorted({len(v) for v in self._views})
        self._edges: dict[bytes, tuple[int, Edge, Edge, Escape] | None] = {}

    def hit(self, data: bytes) -> bool:
        return bool(data) and self.hits([data])[0]

    def hits(
        self,
        texts: list[bytes],
        bounds: list[tuple[int, int]] | None = None,
        schemas: list[Schema] | None = None,
    ) -> list[bool]:
        """Which of several byte strings hold a pattern where it can be a plate: one
        search (the automaton over every marker in every encoding is built once per
        call, not once per text), every occurrence judged by what stands beside it.

        ``bounds`` (a text's ``lo, hi``; default: the whole text): only occurrences that
        start at or after ``lo`` and end at or before ``hi`` count, the others are judged
        in the neighbouring block, which holds their context (:func:`blocks`).
        ``schemas`` (a text's; default: none): an occurrence inside the whole text of one
        of its statements is that statement's word (:func:`sqlite_schema`)."""
        if not self.patterns:
            return [False] * len(texts)
        series = pl.Series([t.decode("latin-1") for t in texts], dtype=pl.String)
        starts = series.str.find_many(self.patterns, overlapping=True).to_list()
        edges = bounds or [(0, len(t)) for t in texts]
        words = schemas or [()] * len(texts)
        return [
            bool(at) and self._stands(t, at, *within, schema)
            for t, at, within, schema in zip(texts, starts, edges, words, strict=True)
        ]

    def _edge(self, view: bytes) -> tuple[int, Edge, Edge, Escape] | None:
        if view not in self._edges:
            self._edges[view] = encoded_edges(view.decode().encode("latin-1"))
        return self._edges[view]

    def _stands(
        self,
        text: bytes,
        starts: list[int],
        lo: int = 0,
        hi: int | None = None,
        schema: Schema = (),
    ) -> bool:
        """Whether a pattern occurring at one of ``starts``, within ``lo, hi`` (bytes of
        ``text``), can be a plate there, and stands outside the text of the statements of
        ``schema``.

        The offsets are those of the text's UTF-8 (polars' own), where a byte above 0x7f
        takes two; the text is judged in that form."""
        hi = len(text) if hi is None else hi
        if text.isascii():
            view = text
        else:
            view = text.decode("latin-1").encode()
            lo = len(text[:lo].decode("latin-1").encode())
            hi = len(view) - len(text[hi:].decode("latin-1").encode())
            schema = tuple(statement.decode("latin-1").encode() for statement in schema)
        spans: list[tuple[int, int]] | None = None
        for start in sorted(set(starts)):
            if start < lo:
                continue
            found = [
                view[start : start + length]
                for length in self._lengths
                if view[start : start + length] in self._views
            ]
            if not found:  # no pattern read back at the offset: nothing proves it chance
                return True
            for needle in found:
                if start + len(needle) > hi:
                    continue
                edge = self._edge(needle)
                if edge is None or clear(view, start, start + len(needle), *edge):
                    if schema and spans is None:
                        spans = _spans(view, schema)
                    if not _within(start, start + len(needle), spans or []):
                        return True
        return False

    def files(self, paths: list[Path]) -> list[bool | OSError]:
        """Which files hold a pattern (or the error that kept one from being read), all
        searched together: their bytes in overlapping blocks, searched in batches of up
        to :data:`BATCH` bytes, so the automaton is built once per batch, not per file.

        A SQLite database (its write-ahead log and journal too) is searched outside the
        text of its schema's statements (:func:`sqlite_schema`)."""
        found: list[bool | OSError] = [False] * len(paths)
        batch: list[tuple[int, bytes, tuple[int, int], Schema]] = []
        size = 0
        for i, path in enumerate(paths):
            try:
                schema = sqlite_schema(path) if self.patterns else ()
                with open(path, "rb") as fh:
                    for _, text, lo, hi in blocks(fh, self.overlap):
                        batch.append((i, text, (lo, hi), schema))
                        size += len(text)
                        if size >= BATCH:
                            self._mark(batch, found)
                            batch, size = [], 0
            except OSError as exc:
                found[i] = exc
        self._mark(batch, found)
        for i, path in enumerate(paths):
            if found[i] is True and self._placed_elsewhere(path):
                found[i] = False
        return found

    def _placed_elsewhere(self, path: Path) -> bool:
        """Whether every occurrence in a SQLite database (or its write-ahead log) is,
        by its place in the database's pages (:mod:`hotlist.sqlite_cells`), no copy of a
        record: across a live record's structure (its header and a value, two values),
        in its schema's statements, in a value of Prefect's own words
        (:mod:`hotlist.prefect_words`), or in a time of hotlist's own stores
        (:mod:`hotlist.sqlite_times`)."""
        try:
            with open(path, "rb") as fh:
                if fh.read(len(SQLITE)) != SQLITE and not path.name.endswith("-wal"):
                    return False
                fh.seek(0)
                schema = sqlite_schema(path)
                spans = [
                    (origin + start, origin + end)
                    for origin, text, lo, hi in blocks(fh, self.overlap)
                    for start, end in self.standing_spans(text, lo, hi, schema)
                ]
        except OSError:
            return False
        return bool(spans) and sqlite_cells.excused(path, spans, _WORDS)

    def _mark(
        self,
        batch: list[tuple[int, bytes, tuple[int, int], Schema]],
        found: list[bool | OSError],
    ) -> None:
        texts = [text for _, text, _, _ in batch]
        hits = self.hits(texts, [b for _, _, b, _ in batch], [s for _, _, _, s in batch])
        for (i, _, _, _), hit in zip(batch, hits, strict=True):
            if hit and found[i] is False:
                found[i] = True

    def stream(self, fh: IO[bytes]) -> bool:
        """Whether any pattern occurs in the stream (read in overlapping blocks)."""
        return any(self.hits([text], [(lo, hi)])[0] for _, text, lo, hi in blocks(fh, self.overlap))

    def standing(self, text: bytes, lo: int, hi: int, schema: Schema = ()) -> list[int]:
        """The offsets in ``text`` (within ``lo, hi`` as in :meth:`hits`) where a pattern
        occurs where it can be a plate: each occurrence judged as :meth:`hits` judges it."""
        return sorted({start for start, _ in self.standing_spans(text, lo, hi, schema)})

    def standing_spans(
        self, text: bytes, lo: int, hi: int, schema: Schema = ()
    ) -> list[tuple[int, int]]:
        """:meth:`standing`, each occurrence with where it ends."""
        found: list[tuple[int, int]] = []
        spans = _spans(text, schema)
        for pattern in {p.encode("latin-1") for p in self.patterns}:
            edge = encoded_edges(pattern)
            at = text.find(pattern, lo)
            while at >= 0 and at + len(pattern) <= hi:
                judged = edge is None or clear(text, at, at + len(pattern), *edge)
                if judged and not _within(at, at + len(pattern), spans):
                    found.append((at, at + len(pattern)))
                at = text.find(pattern, at + 1)
        return sorted(found)


#: Values of a SQLite database that are no copy of a record (:meth:`ByteSearch.files`).
_WORDS = sqlite_cells.AnyOf(PrefectStates(), OwnTimes())
#: The statements of a SQLite database's schema, as its file stores them (:func:`sqlite_schema`).
Schema = tuple[bytes, ...]
SQLITE = b"SQLite format 3\x00"
#: Files beside a SQLite database that hold its pages: its write-ahead log, its journal.
SQLITE_COMPANIONS = ("-wal", "-journal")
_SQLITE_ENCODINGS = {"UTF-8": "utf-8", "UTF-16le": "utf-16-le", "UTF-16be": "utf-16-be"}


def sqlite_schema(path: Path) -> Schema:
    """The text of every statement of the schema (``sqlite_master.sql``) of the SQLite
    database at ``path``, or of the database whose write-ahead log or journal ``path``
    is, in the database's encoding; ``()`` for any other file, or one SQLite cannot read.

    A SQLite file holds its schema as text: ``CREATE TABLE anchors (... INTEGER PRIMARY
    KEY ...)``. A removed vanity plate ``PRIMARY`` inside that text is the statement's
    word, written by the software that made the database, not a copy of a record: an
    occurrence inside the whole text of one of the database's own statements is no
    finding. Anywhere else in the file (a value, a deleted row's bytes, free pages) it
    is. The database is read as it is on disk (``immutable``: no lock taken, nothing
    written, its write-ahead log not applied); a statement only in the log is not
    known, and its words stay findings."""
    db = path
    for suffix in SQLITE_COMPANIONS:
        if path.name.endswith(suffix):
            db = path.with_name(path.name[: -len(suffix)])
    try:
        with open(db, "rb") as fh:
            if fh.read(len(SQLITE)) != SQLITE:
                return ()
        con = sqlite3.connect(f"file:{quote(str(db))}?mode=ro&immutable=1", uri=True)
        try:
            [(encoding,)] = con.execute("PRAGMA encoding").fetchall()
            rows = con.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
        finally:
            con.close()
    except (OSError, sqlite3.Error, ValueError):
        return ()
    codec = _SQLITE_ENCODINGS.get(str(encoding))
    if codec is None:
        return ()
    return tuple(sorted({sql.encode(codec) for (sql,) in rows if isinstance(sql, str) and sql}))


def _spans(text: bytes, statements: Schema) -> list[tuple[int, int]]:
    """Where in ``text`` each of ``statements`` occurs whole."""
    spans: list[tuple[int, int]] = []
    for statement in statements:
        at = text.find(statement)
        while at >= 0:
            spans.append((at, at + len(statement)))
            at = text.find(statement, at + 1)
    return spans


def _within(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= start and end <= b for a, b in spans)


def blocks(fh: IO[bytes], overlap: int) -> Iterator[tuple[int, bytes, int, int]]:
    """A stream in overlapping blocks of about :data:`BLOCK` bytes, each with where it
    starts in the stream and the bounds ``lo, hi`` of :meth:`ByteSearch.hits`.

    Each block carries the end of the bytes before it: a pattern (up to ``overlap``
    bytes) across the cut, and its context (:data:`BEFORE`, :data:`AFTER`), are searched
    whole. An occurrence counts in the block that shows its context on both sides (or the
    stream's edge): one whose context a cut hides (the digit before a plate at the start
    of the carried end, the one after a plate at a block's end) counts in the neighbour,
    never as if nothing stood there."""
    carry = overlap + BEFORE + AFTER if overlap else 0
    tail = b""
    origin = 0  # where the block (its carried tail included) starts in the stream
    block = fh.read(BLOCK)
    while block:
        following = fh.read(BLOCK)
        text = tail + block
        lo = BEFORE if origin else 0
        hi = len(text) - AFTER if following else len(text)
        yield origin, text, lo, hi
        tail = text[-carry:] if carry else b""
        origin += len(text) - len(tail)
        block = following


def open_decoded(
    fh: IO[bytes], depth: int = 0, headers: list[bytes] | None = None
) -> tuple[str, IO[bytes]]:
    """Peel compression layers off a stream: the innermost kind and a stream of its bytes.
    ``headers`` gathers what the layers' headers keep besides the bytes they compress
    (:func:`gzip_header_text`)."""
    reader = fh if isinstance(fh, io.BufferedReader) else io.BufferedReader(cast(Any, fh))
    kind = sniff(reader.peek(16)[:16])
    if kind in {name for name, _ in _COMPRESSED.values()}:
        if depth >= MAX_DEPTH:
            raise Unverifiable(f"compressed more than {MAX_DEPTH} levels deep")
        if kind == "gzip" and headers is not None:
            headers.append(gzip_header_text(reader.peek(1 << 16)))
        [wrap] = [w for name, w in _COMPRESSED.values() if name == kind]
        return open_decoded(cast(IO[bytes], wrap(reader)), depth + 1, headers)
    return kind, reader


def gzip_header_text(head: bytes) -> bytes:
    """The name of the original file and the comment a gzip header keeps (``FNAME``,
    ``FCOMMENT``: ``gzip export.csv`` keeps the name, whatever the ``.gz`` is renamed
    to), from the first bytes of the stream; what a cut header shows, if cut."""
    if len(head) < 10:
        return b""
    flags, at = head[3], 10
    if flags & 0x04:  # FEXTRA: two bytes of length, then that many
        at += 2 + int.from_bytes(head[at : at + 2], "little")
    kept: list[bytes] = []
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: each ends with a zero byte
        if flags & flag:
            end = head.find(b"\x00", at)
            end = len(head) if end < 0 else end
            kept.append(head[at:end])
            at = end + 1
    return b"\x00".join(kept)


#: Where in a file content was found (``""``: the file itself; a column; a zip member)
#: and what was found there.
Hits = list[tuple[str, str]]
RAW_HIT = "raw bytes hold content of a removed record"


def scan_stream(fh: IO[bytes], search: ByteSearch, markers: pl.Series, depth: int = 0) -> Hits:
    """Where in a stream the markers occur; empty when clean."""
    try:
        headers: list[bytes] = []
        kind, reader = open_decoded(fh, depth, headers)
        found: Hits = []
        if any(search.hit(header) for header in headers):
            found.append(
                (
                    "gzip header",
                    "the original name or comment a gzip header keeps"
                    " holds content of a removed record",
                )
            )
        if kind in _UNDECODED.values():
            raise Unverifiable(f"{kind}-compressed, which this system cannot decode")
        if kind == "zip":
            return found + _scan_zip(io.BytesIO(reader.read()), search, markers, depth)
        if kind == "parquet":
            return found + scan_table(pl.scan_parquet(io.BytesIO(reader.read())), markers)
        return found + ([("", RAW_HIT)] if search.stream(reader) else [])
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise Unverifiable(f"cannot be decoded ({type(exc).__name__}: {exc})") from None
    except pl.exceptions.PolarsError as exc:
        raise Unverifiable(f"cannot be read as Parquet ({type(exc).__name__})") from None


def _scan_zip(fh: IO[bytes], search: ByteSearch, markers: pl.Series, depth: int) -> Hits:
    if depth >= MAX_DEPTH:
        raise Unverifiable(f"archives nested more than {MAX_DEPTH} levels deep")
    found: Hits = []
    long_markers = markers.filter(markers.str.len_chars() >= MIN_SCAN_LEN).to_list()
    with zipfile.ZipFile(fh) as archive:
        members = archive.infolist()
        names = pl.Series([info.filename for info in members], dtype=pl.String)
        named = holding(long_markers, names).to_list() if long_markers else [False] * len(members)
        for info, hit in zip(members, named, strict=True):
            if hit:  # its name, in the archive's directory (the finding does not repeat it)
                found.append((info.filename, "a member's name holds content of a removed record"))
        for info in members:
            if info.is_dir():
                continue
            try:
                with archive.open(info) as member:
                    inner = scan_stream(member, search, markers, depth + 1)
            except RuntimeError as exc:  # an encrypted member
                raise Unverifiable(f"member {info.filename!r}: {exc}") from None
            except Unverifiable as exc:
                raise Unverifiable(f"member {info.filename!r}: {exc}") from None
            found += [
                (f"{info.filename}:{where}" if where else info.filename, problem)
                for where, problem in inner
            ]
    return found


def scan_file(path: Path, search: ByteSearch, markers: pl.Series) -> Hits:
    """Where in the file at ``path`` the markers occur (see :func:`scan_stream`)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            fh.seek(0)
            if sniff(head) == "parquet":
                return scan_table(pl.scan_parquet(path), markers)
            return scan_stream(fh, search, markers)
    except OSError as exc:
        raise Unverifiable(f"cannot be read ({type(exc).__name__}: {exc.strerror})") from None
    except pl.exceptions.PolarsError as exc:
        raise Unverifiable(f"cannot be read as Parquet ({type(exc).__name__})") from None


def found_expr(values: pl.Expr, markers: pl.Series, long_markers: list[str], free: bool) -> pl.Expr:
    """How many values equal a marker; in free text (a raw line), also how many contain one
    where it can be a plate (:func:`~hotlist.chance.stands`).

    A field such as ``plate`` holds one value: ``7ABC123`` is no trace of a removed
    ``ABC12``, so structured fields are matched whole.
    """
    found = values.is_in(markers.implode()).sum()
    if free and long_markers:
        found = (
            found
            + values.map_batches(
                functools.partial(holding, long_markers),
                return_dtype=pl.Boolean,
                is_elementwise=True,
            ).sum()
        )
    return found


def holding(markers: list[str], values: pl.Series) -> pl.Series:
    """Which text values hold one of ``markers`` where it can be a plate (:func:`~hotlist.chance.stands`)."""
    candidates = values.str.contains_any(markers).fill_null(False)
    if not candidates.any():
        return candidates
    found = candidates.to_list()
    texts = values.filter(candidates)
    matched = texts.str.extract_many(markers, overlapping=True).to_list()
    at = [i for i, hit in enumerate(found) if hit]
    for i, text, inside in zip(at, texts.to_list(), matched, strict=True):
        found[i] = any(stands(text, m) for m in set(inside))
    return pl.Series(values.name, found, dtype=pl.Boolean)


def _column_expr(
    column: str, dtype: pl.DataType, markers: pl.Series, long_markers: list[str]
) -> pl.Expr:
    """How many values of a column read as a marker when written as text.

    Every column is searched as text, but formatting a whole non-text column as strings is
    most of a Parquet search's cost, so the same count is reached more cheaply:

    * an integer column is compared with the markers that are integers written the way
      polars writes one (``str(v) == m`` exactly when ``m`` parses to ``v`` and ``v`` is
      written back as ``m``: ``"05"``, ``"+5"`` and ``"5 "`` are no integer's text);
    * a date column is written as text value by distinct value (a few thousand days, not
      a row each); a count above zero is then taken row by row, as for any column.
    """
    values = pl.col(column)
    if dtype.is_integer():
        typed = markers.cast(dtype, strict=False)
        exact = markers.filter(typed.cast(pl.String) == markers).cast(dtype)
        return values.is_in(exact.implode()).sum()
    if dtype == pl.Date:
        return values.unique().cast(pl.String).is_in(markers.implode()).sum()
    text = values if dtype == pl.String else values.cast(pl.String, strict=False)
    return found_expr(text, markers, long_markers, column in FREE_TEXT)


def scan_table(frame: pl.LazyFrame, markers: pl.Series) -> Hits:
    """The columns of a table (Parquet or CSV) holding a marker.

    Every column is searched as text (:func:`_column_expr`), streamed (bounded memory:
    the published CSV of a 2M-line extract read whole took the purge past 1 GB)."""
    if markers.len() == 0:
        return []
    long_markers = markers.filter(markers.str.len_chars() >= MIN_SCAN_LEN).to_list()
    schema = frame.collect_schema()
    counts = [
        _column_expr(column, dtype, markers, long_markers).alias(column)
        for column, dtype in schema.items()
    ]
    row = frame.select(counts).collect(engine="streaming").row(0, named=True)
    recount = [  # a date found by its distinct values: how many rows hold it
        found_expr(pl.col(c).cast(pl.String), markers, long_markers, False).alias(c)
        for c, found in row.items()
        if found and schema[c] == pl.Date
    ]
    if recount:
        row |= frame.select(recount).collect(engine="streaming").row(0, named=True)
    return [
        (column, f"{found} values hold content of a removed record")
        for column, found in row.items()
        if found
    ]


def scan_csv(path: Path, search: ByteSearch, markers: pl.Series) -> Hits:
    """A CSV export read as a table (whole values); one that does not parse as CSV is
    searched as a file like any other, and so is one that is not plain UTF-8 text."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")) or sniff(head) != "raw":
        return scan_file(path, search, markers)
    try:
        return scan_table(pl.scan_csv(path, infer_schema=False), markers)
    except pl.exceptions.PolarsError:
        return scan_file(path, search, markers)
