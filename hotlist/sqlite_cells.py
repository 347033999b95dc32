"""Which value of which table and column of a SQLite database a byte of its file (or of
its write-ahead log) is part of.

The verification searches a SQLite file's raw bytes for removed plates, as it searches
every file. Some databases it does not write hold words as values that a vanity plate
may spell: Prefect's holds ``RUNNING`` as the state type of every flow run. To tell such
a value from a copy of a record, an occurrence is placed here: the page it lies in is
read as a b-tree page of the SQLite file format (https://sqlite.org/fileformat2.html),
the cell it lies in is read as a record, and the page is attributed to its table (or
index) by walking every b-tree of the database from its root. An occurrence is placed
only if it lies wholly inside one value stored in a live cell of a page of a known
b-tree; anywhere else (a freed cell's bytes, a free page, an overflow page, a page that
does not read as a b-tree page, a journal) it is not placed, and stays a finding.

Nothing here trusts the file: every offset and length read from it is bounded, and a
page that does not read consistently places nothing.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

HEADER = b"SQLite format 3\x00"
WAL_MAGIC = (0x377F0682, 0x377F0683)
WAL_HEADER = 32
FRAME_HEADER = 24
_ENCODINGS = {1: "utf-8", 2: "utf-16-le", 3: "utf-16-be"}
TABLE_LEAF, TABLE_INTERIOR, INDEX_LEAF, INDEX_INTERIOR = 13, 5, 10, 2
#: The deepest b-tree walked (a real one of a billion rows is under 10 levels deep).
MAX_DEPTH = 40
#: Serial types of an integer (1 to 8 bytes, or the constants 0 and 1).
INTEGER_SERIALS = frozenset({1, 2, 3, 4, 5, 6, 8, 9})
#: How far before a freed value its record's header is looked for.
CARVE_WINDOW = 512


@dataclass(frozen=True)
class Value:
    """A text value of a live cell, and where its bytes are in the file searched."""

    table: str
    column: str
    text: str
    start: int
    end: int
    #: False for a freed value read back from where an anchor said it starts, whose
    #: bytes past the anchor may have been overwritten since (undecodable ones replaced).
    whole: bool = True
    #: The record's values by column, for a value of a live cell (empty for a freed one).
    row: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class _Tree:
    name: str
    table: str
    columns: tuple[str, ...]
    is_index: bool
    #: Each column's declared type, upper case ("" where none is declared).
    types: tuple[str, ...] = ()

    def type_of(self, column: int) -> str:
        return self.types[column] if column < len(self.types) else ""


#: What a cell's record holds: (of an index, its number of values, the column of a
#: text value, its text, its start and end in the file).
_Placed = tuple[bool, int, int, str, int, int, tuple[object, ...]]


class _Structure:
    """Bytes of a live cell in no one value of its record (:meth:`Database._in_cell`)."""


STRUCTURE = _Structure()


#: The schema table: its values (``CREATE TABLE anchors (... INTEGER PRIMARY KEY ...)``)
#: are the words of the software that made the database, not data, wherever a page of it
#: is read (in the log too, where a statement not yet folded into the file stands).
SCHEMA = _Tree(
    "sqlite_schema",
    "sqlite_schema",
    ("type", "name", "tbl_name", "rootpage", "sql"),
    False,
    ("TEXT", "TEXT", "TEXT", "INT", "TEXT"),
)


class _Unreadable(Exception):
    """A page or cell that does not read as the file format says."""


def _varint(data: bytes, at: int, end: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        if at + i >= end:
            raise _Unreadable
        byte = data[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    raise _Unreadable  # pragma: no cover - the loop returns by its ninth byte


def _serial_size(kind: int) -> int:
    if kind >= 12:
        return (kind - 12) // 2
    return (0, 1, 2, 3, 4, 6, 8, 8, 0, 0, -1, -1)[kind]


#: A statement that makes a table or an index, the only ones a schema's columns are
#: learnt from (:func:`_schema_connection`).
_CREATE = re.compile(r"\s*CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX)\s", re.IGNORECASE)
#: What making a table or an index asks of SQLite's authorizer, and nothing more: no
#: query (``CREATE TABLE ... AS SELECT``), no attachment, no pragma.
_ALLOWED = frozenset(
    {
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_REINDEX,
        sqlite3.SQLITE_FUNCTION,
    }
)
#: SQLite virtual-machine steps (in thousands) a schema statement may take.
_STEPS = 100


def _authorize(action: int, first: str | None, *_: object) -> int:
    if action not in _ALLOWED:
        return sqlite3.SQLITE_DENY
    if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE):
        return (
            sqlite3.SQLITE_OK
            if first in ("sqlite_master", "sqlite_temp_master")
            else sqlite3.SQLITE_DENY
        )
    return sqlite3.SQLITE_OK


def _schema_connection() -> sqlite3.Connection:
    """An empty in-memory database to make a file's tables and indexes in, for their
    columns (``PRAGMA table_info``): the statements come from the file searched, so only
    ``CREATE TABLE``/``CREATE INDEX`` are run, with an authorizer that refuses anything
    else they might ask (a query, an attachment) and a bound on their steps."""
    memory = sqlite3.connect(":memory:")
    memory.set_authorizer(_authorize)
    steps = iter(range(_STEPS))
    memory.set_progress_handler(lambda: 0 if next(steps, None) is not None else 1, 1000)
    return memory


def _fits(serial: int, declared: str) -> bool:
    """Whether a value of serial type ``serial`` can be stored in a column declared
    ``declared`` (by the column's type affinity; NULL in any)."""
    if serial == 0 or not declared or "BLOB" in declared:
        return True
    text = serial >= 13 and serial % 2 == 1
    number = 1 <= serial <= 9 and serial != 7
    if "INT" in declared or "BOOL" in declared:
        return number
    if any(word in declared for word in ("CHAR", "CLOB", "TEXT", "UUID", "JSON", "DATE", "TIME")):
        return text
    if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
        return number or serial == 7
    return text or number or serial == 7


class Database:
    """A SQLite database as its file and write-ahead log hold it, for placing bytes."""

    def __init__(self, main: bytes, wal: bytes = b"") -> None:
        if not main.startswith(HEADER) or len(main) < 100:
            raise _Unreadable
        size = struct.unpack(">H", main[16:18])[0]
        self.page_size = 65536 if size == 1 else size
        if self.page_size < 512 or self.page_size & (self.page_size - 1):
            raise _Unreadable
        self.usable = self.page_size - main[20]
        self.encoding = _ENCODINGS.get(struct.unpack(">I", main[56:60])[0] or 1, "")
        if not self.encoding or self.usable < 480:
            raise _Unreadable
        self.main = main
        self.wal = wal
        self.frames = self._frames(wal)
        latest: dict[int, int] = {}
        for number, (page, start) in enumerate(self.frames):
            if number <= self._last_commit:
                latest[page] = start
        self._latest = latest
        self._view = latest
        self._snapshots: dict[int, dict[int, _Tree]] = {}
        self._stale: dict[tuple[str, int, bool], bool] = {}
        self.trees, self._roots = self._trees()
        self._spilled: dict[frozenset[str], dict[int, tuple[_Tree, int, bytes, int]]] = {}

    # -- pages ------------------------------------------------------------------

    def _frames(self, wal: bytes) -> list[tuple[int, int]]:
        """(page number, offset of the page image in the log) of each frame whose salts
        are the log header's; and the last frame that ends a transaction."""
        self._last_commit = -1
        self._commits: list[int] = []
        if len(wal) < WAL_HEADER or struct.unpack(">I", wal[:4])[0] not in WAL_MAGIC:
            return []
        if struct.unpack(">I", wal[8:12])[0] != self.page_size:
            return []
        salts = wal[16:24]
        frames: list[tuple[int, int]] = []
        at = WAL_HEADER
        while at + FRAME_HEADER + self.page_size <= len(wal):
            page, commit = struct.unpack(">II", wal[at : at + 8])
            if wal[at + 8 : at + 16] != salts or page == 0:
                break
            frames.append((page, at + FRAME_HEADER))
            if commit:
                self._last_commit = len(frames) - 1
                self._commits.append(len(frames) - 1)
            at += FRAME_HEADER + self.page_size
        return frames

    def _page(self, number: int) -> tuple[bytes, int]:
        """The image of page ``number`` in the current view (the latest committed one,
        unless :meth:`_owners` looks at an earlier commit): (the bytes, its offset)."""
        if number in self._view:
            return self.wal, self._view[number]
        start = (number - 1) * self.page_size
        if number < 1 or start + self.page_size > len(self.main):
            raise _Unreadable
        return self.main, start

    # -- cells --------------------------------------------------------------------

    def _cells(self, data: bytes, start: int, number: int) -> Iterator[tuple[int, int, int]]:
        """(page type, offset of a cell, end of the page) of every cell of a b-tree page
        image starting at ``start`` in ``data``; the page header follows the file header
        on page 1."""
        head = start + (100 if number == 1 else 0)
        end = start + self.usable
        if head + 8 > end:
            raise _Unreadable
        kind = data[head]
        if kind not in (TABLE_LEAF, TABLE_INTERIOR, INDEX_LEAF, INDEX_INTERIOR):
            raise _Unreadable
        count = struct.unpack(">H", data[head + 3 : head + 5])[0]
        pointers = head + (8 if kind in (TABLE_LEAF, INDEX_LEAF) else 12)
        if pointers + 2 * count > end:
            raise _Unreadable
        for i in range(count):
            cell = start + struct.unpack(">H", data[pointers + 2 * i : pointers + 2 * i + 2])[0]
            if not pointers + 2 * count <= cell < end:
                raise _Unreadable
            yield kind, cell, end

    def _children(self, number: int) -> list[int]:
        data, start = self._page(number)
        head = start + (100 if number == 1 else 0)
        children: list[int] = []
        kinds: set[int] = set()
        for kind, cell, end in self._cells(data, start, number):
            kinds.add(kind)
            if kind in (TABLE_INTERIOR, INDEX_INTERIOR):
                if cell + 4 > end:
                    raise _Unreadable
                children.append(struct.unpack(">I", data[cell : cell + 4])[0])
        if data[head] in (TABLE_INTERIOR, INDEX_INTERIOR):
            children.append(struct.unpack(">I", data[head + 8 : head + 12])[0])
        return children

    def _payload(self, kind: int, data: bytes, cell: int, end: int) -> tuple[int, int, int]:
        """(start, local length, total length) of a cell's payload."""
        at = cell + (4 if kind == INDEX_INTERIOR else 0)
        total, at = _varint(data, at, end)
        if kind == TABLE_LEAF:
            _, at = _varint(data, at, end)
        usable = self.usable
        most = usable - 35 if kind == TABLE_LEAF else (usable - 12) * 64 // 255 - 23
        if total <= most:
            local = total
        else:
            least = (usable - 12) * 32 // 255 - 23
            local = least + (total - least) % (usable - 4)
            if local > most:
                local = least
        if at + local > end:
            raise _Unreadable
        return at, local, total

    def _values(self, data: bytes, at: int, local: int) -> Iterator[tuple[int, int, int, int]]:
        """(column number, serial type, start, end) of each value of a record whose
        bytes stored in the page are ``data[at:at + local]`` (a value running past them,
        into an overflow page, ends the record here)."""
        limit = at + local
        size, cursor = _varint(data, at, limit)
        header_end = at + size
        if header_end > limit or size < 1:
            raise _Unreadable
        body = header_end
        column = 0
        while cursor < header_end:
            kind, cursor = _varint(data, cursor, header_end)
            width = _serial_size(kind)
            if width < 0:
                raise _Unreadable
            if body + width > limit:
                return
            yield column, kind, body, body + width
            body += width
            column += 1

    # -- the schema -----------------------------------------------------------------

    def _walk(self, root: int) -> Iterator[tuple[int, bytes, int]]:
        """Every page of the b-tree rooted at ``root``: (number, bytes, offset)."""
        seen: set[int] = set()
        level = [root]
        for _ in range(MAX_DEPTH):
            if not level:
                return
            following: list[int] = []
            for number in level:
                if number in seen:
                    raise _Unreadable
                seen.add(number)
                data, start = self._page(number)
                yield number, data, start
                following.extend(self._children(number))
            level = following
        raise _Unreadable

    def _schema_rows(self) -> list[tuple[str, str, str, int, str | None]]:
        rows: list[tuple[str, str, str, int, str | None]] = []
        for number, data, start in self._walk(1):
            for kind, cell, end in self._cells(data, start, number):
                if kind != TABLE_LEAF:
                    continue
                at, local, total = self._payload(kind, data, cell, end)
                if local != total:
                    raise _Unreadable  # a schema statement in an overflow page: not read
                fields = [
                    self._decode(data, k, s, e) for _, k, s, e in self._values(data, at, local)
                ]
                if len(fields) != 5:
                    raise _Unreadable
                kind_, name, table, root, sql = fields
                if not (
                    isinstance(kind_, str) and isinstance(name, str) and isinstance(table, str)
                ):
                    raise _Unreadable
                rows.append(
                    (
                        kind_,
                        name,
                        table,
                        root if isinstance(root, int) else 0,
                        sql if isinstance(sql, str) else None,
                    )
                )
        return rows

    def _decode(self, data: bytes, kind: int, start: int, end: int) -> str | int | None:
        if kind >= 13 and kind % 2:
            return data[start:end].decode(self.encoding, errors="strict")
        if 1 <= kind <= 6:
            return int.from_bytes(data[start:end], "big", signed=True)
        if kind in (8, 9):
            return kind - 8
        return None

    def _trees(self) -> tuple[dict[int, _Tree], dict[str, int]]:
        """Every page of every table and index b-tree of the database as the current
        view (:attr:`_view`) holds it: which b-tree, which columns; and each b-tree's root."""
        rows = self._schema_rows()
        memory = _schema_connection()
        try:
            for kind, _, _, _, sql in rows:
                if kind in ("table", "index") and sql and _CREATE.match(sql):
                    with contextlib.suppress(sqlite3.Error):
                        memory.execute(sql)
            memory.set_authorizer(None)  # the file's statements are made: now ask about them
            memory.set_progress_handler(None, 0)
            pages: dict[int, _Tree] = {}
            roots = {SCHEMA.name: 1}
            for number, _, _ in self._walk(1):
                pages[number] = SCHEMA
            for kind, name, table, root, _ in rows:
                if kind not in ("table", "index") or root <= 0:
                    continue
                tree = self._tree(memory, kind, name, table)
                if tree is None:
                    continue
                roots[name] = root
                for number, _, _ in self._walk(root):
                    if number in pages:
                        raise _Unreadable
                    pages[number] = tree
            return pages, roots
        finally:
            memory.close()

    def _owners(self, commit: int) -> dict[int, _Tree]:
        """:meth:`_trees` of the database as it stood at a commit of its log (-1: the
        file alone): the b-tree each page belonged to then. Nothing if it does not read."""
        if commit not in self._snapshots:
            view = {page: at for page, at in self.frames[: commit + 1]}
            latest, self._view = self._view, view
            try:
                self._snapshots[commit] = self._trees()[0]
            except (_Unreadable, UnicodeDecodeError, struct.error):
                self._snapshots[commit] = {}
            finally:
                self._view = latest
        return self._snapshots[commit]

    def _owner(
        self, in_wal: bool, start: int, located: tuple[bytes, int, int, bool], rule: Rule
    ) -> list[_Tree]:
        """The b-tree the page image holding byte ``start`` belonged to when it was
        written (a list of one), or the b-trees it may have belonged to:

        * the image the database reads: its b-tree now;
        * an older one (a page of the file the log has a later image of, an older frame
          of the log): its b-tree as of the commit that wrote it; a frame not committed
          belongs to none;
        * a free page (in no b-tree then: deleted rows' pages keep their last image):
          every b-tree of the database it reads as a page of (:meth:`_reads_as`), each of
          which must then pass the value over;
        * a frame of an earlier log (past the valid frames: a log restarted after a
          checkpoint leaves them), written at a commit no longer known: its page's
          b-tree now, or the schema, if it reads as a page of it, an index's first keys
          all passed over by the rule."""
        data, page_start, number, latest = located
        if latest:
            owners = self.trees
        elif not in_wal:
            owners = self._owners(-1)
        else:
            index = (start - WAL_HEADER) // (FRAME_HEADER + self.page_size)
            if index >= len(self.frames):
                for tree in (self.trees.get(number), SCHEMA):
                    if tree is not None and self._reads_as(tree, data, page_start, number, rule):
                        return [tree]
                return []
            commit = next((c for c in self._commits if c >= index), None)
            if commit is None:
                return []
            owners = self._owners(commit)
        if number in owners:
            return [owners[number]]
        trees = {t.name: t for t in owners.values()}
        return [
            t for _, t in sorted(trees.items()) if self._reads_as(t, data, page_start, number, None)
        ]

    def _reads_as(
        self, tree: _Tree, data: bytes, page_start: int, number: int, rule: Rule | None
    ) -> bool:
        """Whether a page image reads as a page of ``tree``: a b-tree page of its kind
        with live cells, every one a whole record of exactly its columns, each value of
        its column's declared kind; of an index, every first key one the rule passes
        over (a page of another index of the same shape, say names, holds others); of
        the schema, every record a schema object's with its ``CREATE`` statement."""
        key = (tree.name, page_start, rule is None)
        if key in self._stale:
            return self._stale[key]
        self._stale[key] = False
        try:
            leaf, interior = (INDEX_LEAF, INDEX_INTERIOR) if tree.is_index else (TABLE_LEAF, -1)
            cells = list(self._cells(data, page_start, number))
            if cells and not tree.is_index and all(c[0] == TABLE_INTERIOR for c in cells):
                self._stale[key] = True  # a table's interior page: child pointers and keys
                return True
            records = [c for c in cells if c[0] != TABLE_INTERIOR]
            if not records or any(kind not in (leaf, interior) for kind, _, _ in records):
                return False
            for kind, cell, page_end in records:
                at, local, total = self._payload(kind, data, cell, page_end)
                values = list(self._values(data, at, local))
                if local != total or len(values) != len(tree.columns):
                    return False
                if not all(_fits(k, tree.type_of(c)) for c, k, _, _ in values):
                    return False
                if tree is SCHEMA:
                    kind_, _, _, _, sql = (self._decode(data, k, a, b) for _, k, a, b in values)
                    if kind_ not in ("table", "index", "view", "trigger") or not (
                        sql is None or (isinstance(sql, str) and sql.startswith("CREATE "))
                    ):
                        return False
                if tree.is_index and rule is not None:
                    _, serial, first, after = values[0]
                    text = self._decode(data, serial, first, after)
                    value = Value(tree.table, tree.columns[0], str(text), first, after)
                    if not isinstance(text, str) or not rule(value, first, after):
                        return False
            self._stale[key] = True
        except (_Unreadable, UnicodeDecodeError):
            return False
        return True

    @staticmethod
    def _tree(memory: sqlite3.Connection, kind: str, name: str, table: str) -> _Tree | None:
        quoted = '"' + name.replace('"', '""') + '"'
        with contextlib.suppress(sqlite3.Error):
            if kind == "table":
                info = memory.execute(f"PRAGMA table_info({quoted})").fetchall()
                types = tuple(str(r[2] or "").upper() for r in info)
                columns = tuple(str(r[1]) for r in info)
                return _Tree(name, table, columns, False, types) if info else None
            info = memory.execute(f"PRAGMA index_xinfo({quoted})").fetchall()
            declared = {
                str(r[1]): str(r[2] or "").upper()
                for r in memory.execute(
                    f'PRAGMA table_info("{table.replace(chr(34), chr(34) * 2)}")'
                ).fetchall()
            }
            columns = tuple(str(r[2]) if r[2] is not None else "" for r in info)
            types = tuple(
                declared.get(c, "INTEGER" if c == "" and r[1] == -1 else "")
                for c, r in zip(columns, info, strict=True)
            )
            return _Tree(name, table, columns, True, types) if info else None
        return None

    # -- placing ----------------------------------------------------------------------

    def excused(self, in_wal: bool, start: int, end: int, rule: Rule) -> bool:
        """Whether bytes ``start:end`` of the database file (or, with ``in_wal``, of
        its log) lie wholly inside one text value that ``rule`` says is no copy of a
        record:

        * a value of a live cell of a page of a known b-tree (in a page image the
          database no longer reads, a stale frame of the log, the cell's record must
          read as a whole record of one of the rule's b-trees, all its columns);
        * in a page's free space, a freed cell's value that :meth:`Rule.anchors` points
          at and that reads back as the value of a whole record of one of them."""
        with contextlib.suppress(_Unreadable, UnicodeDecodeError, struct.error, IndexError):
            located = self._locate(in_wal, start)
            if located is None:
                return False
            data, page_start, number, _ = located
            if end > page_start + self.usable:
                return False
            trees = self._owner(in_wal, start, located, rule)
            cell = self._in_cell(data, page_start, number, start, end)
            if isinstance(cell, _Structure):
                return bool(trees)
            if cell is False:
                return False
            if cell is not None:
                index, _, column, text, value_start, value_end, row = cell
                return bool(trees) and all(
                    t.is_index == index
                    and column < len(t.columns)
                    and (
                        t is SCHEMA
                        or rule(
                            Value(
                                t.table,
                                t.columns[column],
                                text,
                                value_start,
                                value_end,
                                row=tuple(zip(t.columns, row, strict=False)),
                            ),
                            start,
                            end,
                        )
                    )
                    for t in trees
                )
            spilled = self._in_overflow(data, page_start, number, start, end, rule)
            if spilled is not None:
                return spilled
            tree = trees[0] if len(trees) == 1 else None
            return self._carved(data, page_start, number, tree, start, end, rule)
        return False

    def _locate(self, in_wal: bool, start: int) -> tuple[bytes, int, int, bool] | None:
        """The page image holding byte ``start``: (the bytes, its offset, its page number,
        whether it is the one the database reads). A page of the file the log holds a
        later image of, an earlier frame of the log for the same page, a frame past the
        log's valid ones (a log restarted after a checkpoint leaves its older frames
        after the new), are images the database no longer reads."""
        if in_wal:
            frame = FRAME_HEADER + self.page_size
            index = (start - WAL_HEADER) // frame if start >= WAL_HEADER else -1
            at = WAL_HEADER + index * frame + FRAME_HEADER
            if index < 0 or start < at or at + self.page_size > len(self.wal):
                return None
            if index < len(self.frames):
                page = self.frames[index][0]
                return self.wal, at, page, self._latest.get(page) == at
            header = self.wal[at - FRAME_HEADER : at - FRAME_HEADER + 4]
            return self.wal, at, struct.unpack(">I", header)[0], False
        number = start // self.page_size + 1
        if number * self.page_size > len(self.main):
            return None  # bytes past the last whole page: in no page
        return self.main, (number - 1) * self.page_size, number, number not in self._latest

    def _in_cell(
        self, data: bytes, page_start: int, number: int, start: int, end: int
    ) -> _Placed | _Structure | Literal[False] | None:
        """The record of the cell (by the page image's own cell pointers) that the bytes
        lie in: (of an index, its number of values, the column of the text value holding
        the bytes, its text, its start and end). False: they lie wholly in a value of it
        that is no text (a blob, a number); :data:`STRUCTURE`: in a cell, in no one value
        (across a record's header and its values, or two values); None: in no cell, or
        the page does not read as a b-tree page."""
        try:
            cells = list(self._cells(data, page_start, number))
        except _Unreadable:
            return None
        for kind, cell, page_end in cells:
            if kind == TABLE_INTERIOR:
                if cell <= start < cell + 13:
                    return STRUCTURE
                continue
            at, local, total = self._payload(kind, data, cell, page_end)
            if not cell <= start < at + local:
                continue
            if local < total and at <= start and end <= at + local:
                return self._in_payload(
                    kind, self._assembled(data, at, local, total), start - at, start, end
                )
            values = list(self._values(data, at, local))
            for column, serial, value_start, value_end in values:
                if value_start <= start and end <= value_end:
                    if serial < 13 or serial % 2 == 0:
                        return False
                    text = data[value_start:value_end].decode(self.encoding, errors="strict")
                    index = kind in (INDEX_LEAF, INDEX_INTERIOR)
                    count = len(values) if local == total else -1
                    row = self._row(data, values)
                    return index, count, column, text, value_start, value_end, row
            return STRUCTURE
        return None

    def _row(self, data: bytes, values: list[tuple[int, int, int, int]]) -> tuple[object, ...]:
        """The values of a record, decoded (a text that does not decode: None)."""
        row: list[object] = []
        for _, serial, start, end in values:
            try:
                row.append(self._decode(data, serial, start, end))
            except UnicodeDecodeError:
                row.append(None)
        return tuple(row)

    def _assembled(self, data: bytes, at: int, local: int, total: int) -> bytes:
        """A cell's whole payload: its bytes in the page, then those of its chain of
        overflow pages (the latest image of each)."""
        if at + local + 4 > len(data):
            raise _Unreadable
        parts = [data[at : at + local]]
        following = struct.unpack(">I", data[at + local : at + local + 4])[0]
        left = total - local
        seen: set[int] = set()
        while left > 0:
            if following in seen or len(seen) > total // (self.usable - 4) + 1:
                raise _Unreadable
            seen.add(following)
            page, page_start = self._page(following)
            taken = min(left, self.usable - 4)
            parts.append(page[page_start + 4 : page_start + 4 + taken])
            following = struct.unpack(">I", page[page_start : page_start + 4])[0]
            left -= taken
        return b"".join(parts)

    def _in_payload(
        self, kind: int, payload: bytes, offset: int, start: int, end: int
    ) -> _Placed | _Structure | Literal[False]:
        """:meth:`_in_cell` for bytes at ``offset`` of a whole payload; the value's start
        and end are where they would stand in the file, counted from the bytes'."""
        values = list(self._values(payload, 0, len(payload)))
        width = end - start
        for column, serial, value_start, value_end in values:
            if value_start <= offset and offset + width <= value_end:
                if serial < 13 or serial % 2 == 0:
                    return False
                text = payload[value_start:value_end].decode(self.encoding, errors="strict")
                index = kind in (INDEX_LEAF, INDEX_INTERIOR)
                first = start - (offset - value_start)
                row = self._row(payload, values)
                return index, len(values), column, text, first, first + value_end - value_start, row
        return STRUCTURE

    def _in_overflow(
        self, data: bytes, page_start: int, number: int, start: int, end: int, rule: Rule
    ) -> bool | None:
        """Whether bytes in an overflow page of a live cell of one of the rule's tables
        lie in a value it says is no copy; None if the page is none (an older image of
        it in the log counts only if byte for byte the one the database reads)."""
        owner = self._overflows(rule).get(number)
        if owner is None:
            return None
        tree, kind, payload, offset = owner
        latest, latest_start = self._page(number)
        if (
            data[page_start : page_start + self.usable]
            != latest[latest_start : latest_start + self.usable]
        ):
            return None
        within = start - page_start - 4
        if within < 0 or end - page_start > min(self.usable, 4 + len(payload) - offset):
            return False
        cell = self._in_payload(kind, payload, offset + within, start, end)
        if isinstance(cell, _Structure):
            return True
        if cell is False or cell[2] >= len(tree.columns):
            return False
        _, _, column, text, value_start, value_end, row = cell
        value = Value(
            tree.table,
            tree.columns[column],
            text,
            value_start,
            value_end,
            row=tuple(zip(tree.columns, row, strict=False)),
        )
        return tree is SCHEMA or rule(value, start, end)

    def _overflows(self, rule: Rule) -> dict[int, tuple[_Tree, int, bytes, int]]:
        """Every overflow page of a live cell of the schema or the rule's tables: (its b-tree, the
        cell's kind, the cell's whole payload, where the page's bytes start in it)."""
        if rule.tables in self._spilled:
            return self._spilled[rule.tables]
        pages: dict[int, tuple[_Tree, int, bytes, int]] = {}
        for tree in [SCHEMA, *self._tables(rule.tables)]:
            with contextlib.suppress(_Unreadable, UnicodeDecodeError):
                for number, data, start in self._walk(self._roots[tree.name]):
                    for kind, cell, page_end in self._cells(data, start, number):
                        if kind == TABLE_INTERIOR:
                            continue
                        at, local, total = self._payload(kind, data, cell, page_end)
                        if local == total:
                            continue
                        payload = self._assembled(data, at, local, total)
                        following = struct.unpack(">I", data[at + local : at + local + 4])[0]
                        offset = local
                        while offset < total:
                            pages[following] = (tree, kind, payload, offset)
                            page, page_start = self._page(following)
                            following = struct.unpack(">I", page[page_start : page_start + 4])[0]
                            offset += self.usable - 4
        self._spilled[rule.tables] = pages
        return pages

    def _carved(
        self,
        data: bytes,
        page_start: int,
        number: int,
        tree: _Tree | None,
        start: int,
        end: int,
        rule: Rule,
    ) -> bool:
        """Whether the bytes lie, outside the live cells of a page of ``tree`` (its
        owner when the image was written: :meth:`_owner`), in a value of a freed cell of
        that b-tree, at a value the rule points at (:meth:`Rule.anchors`):

        * one that reads back as a whole record of exactly its columns, each value of its
          column's declared kind (:func:`_fits`);
        * for an index, its first key: right after the last serial type of its record's
          header, the rowid's (an integer's: a text's bytes never hold one), or, where
          the cell pointers overwrote that too, followed by the rowid and a whole cell of
          the index; or anywhere in a freeblock's body (a freeblock holds the bytes of its
          own b-tree's freed cells, its header over their first four);
        * for a table, a value of a record whose header lost its first bytes
          (:meth:`_freed_record`)."""
        if tree is None or not tree.columns or tree.table not in rule.tables:
            return False
        limit = page_start + self.usable
        blocks = self._freeblocks(data, page_start, number)
        for value_start, value_end in rule.anchors(data, start, end):
            low = max(page_start, value_start - CARVE_WINDOW)
            for header in range(value_start - 1, low - 1, -1):
                read = self._record_at(data, header, limit, value_start, value_end, tree)
                if read is None:
                    continue
                column, text, value_stop = read
                value = Value(
                    tree.table,
                    tree.columns[column],
                    text,
                    value_start,
                    value_stop,
                    whole=value_end != -1,
                )
                if rule(value, start, end):
                    return True
            if value_end == -1:
                continue
            text = data[value_start:value_end].decode(self.encoding, errors="strict")
            if tree.is_index:
                value = Value(tree.table, tree.columns[0], text, value_start, value_end)
                freed = any(a + 4 <= value_start and value_end <= b for a, b in blocks)
                shaped = freed or data[value_start - 1] in INTEGER_SERIALS
                if not shaped:  # the next cell of the index right after its rowid
                    shaped = any(
                        self._index_cell_at(data, value_end + width, limit, tree, rule)
                        for width in (0, 1, 2, 3, 4, 6, 8)
                    )
                if shaped and rule(value, start, end):
                    return True
                continue
            for cell in range(value_start - 4, low - 1, -1):
                for lost in (0, 1):
                    at = self._freed_record(data, cell, limit, lost, tree, value_start, value_end)
                    if at is not None:
                        value = Value(tree.table, tree.columns[at], text, value_start, value_end)
                        if rule(value, start, end):
                            return True
        return False

    def _index_cell_at(self, data: bytes, cell: int, limit: int, tree: _Tree, rule: Rule) -> bool:
        """Whether a whole cell of index ``tree`` starts at ``cell``, its first key a
        value the rule says is no copy."""
        try:
            at, local, total = self._payload(INDEX_LEAF, data, cell, limit)
            values = list(self._values(data, at, local))
            if local != total or len(values) != len(tree.columns):
                return False
            _, serial, first, after = values[0]
            if serial < 13 or serial % 2 == 0:
                return False
            text = data[first:after].decode(self.encoding, errors="strict")
            return rule(Value(tree.table, tree.columns[0], text, first, after), first, after)
        except (_Unreadable, UnicodeDecodeError):
            return False

    def _freed_record(
        self,
        data: bytes,
        cell: int,
        limit: int,
        lost: int,
        tree: _Tree,
        value_start: int,
        value_end: int,
    ) -> int | None:
        """The column of a text value exactly at ``value_start:value_end`` of a record
        of table ``tree`` freed from a cell at ``cell``, read back though the freeblock
        header SQLite writes over a freed cell's first four bytes took its payload size
        and rowid (a byte each at least), its header's size, and ``lost`` (0 or 1)
        serial types of a byte: the serial types after them read, each of its column's
        declared kind (:func:`_fits`), a lost one's width (a text's) the one that puts a
        known text value exactly there, the record ending before ``limit``; None if none
        reads so."""
        count = len(tree.columns)
        header = cell + 3 - lost
        cursor = cell + 4
        known: list[int] = []
        with contextlib.suppress(_Unreadable):
            while len(known) < count - lost:
                serial, cursor = _varint(data, cursor, value_start)
                known.append(serial)
        widths = [_serial_size(k) for k in known]
        if len(known) != count - lost or min(widths, default=0) < 0 or cursor - header > 127:
            return None
        if not all(_fits(k, tree.type_of(i)) for i, k in enumerate(known, start=lost)):
            return None
        offset = cursor
        for column, (serial, width) in enumerate(zip(known, widths, strict=True), start=lost):
            if offset > value_start:
                return None
            if serial >= 13 and serial % 2 and value_end - value_start == width:
                lost_width = value_start - offset
                fits = cursor + sum(widths) + lost_width <= limit
                lost_text = (
                    lost and 0 < lost_width <= 57 and _fits(13 + 2 * lost_width, tree.type_of(0))
                )
                if fits and (lost_width == 0 or lost_text):
                    return column
            offset += width
        return None

    def _freeblocks(self, data: bytes, page_start: int, number: int) -> list[tuple[int, int]]:
        """(start, end) of each freeblock of a b-tree page: a chain in ascending order."""
        head = page_start + (100 if number == 1 else 0)
        at = struct.unpack(">H", data[head + 1 : head + 3])[0]
        blocks: list[tuple[int, int]] = []
        while at and len(blocks) < self.usable // 4:
            block = page_start + at
            if block + 4 > page_start + self.usable or (blocks and block < blocks[-1][1]):
                return []
            following, size = struct.unpack(">HH", data[block : block + 4])
            if size < 4 or block + size > page_start + self.usable:
                return []
            blocks.append((block, block + size))
            at = following
        return blocks

    def _record_at(
        self,
        data: bytes,
        header: int,
        limit: int,
        value_start: int,
        value_end: int,
        tree: _Tree,
    ) -> tuple[int, str, int] | None:
        """(column, text, end) of a record of ``tree`` whose header starts at
        ``header``: exactly its columns, each value of its column's declared kind
        (:func:`_fits`), read whole before ``limit``, with a text value exactly at
        ``value_start:value_end`` (``value_end`` -1: starting at ``value_start``, its
        undecodable bytes replaced); None if none reads so."""
        try:
            size, cursor = _varint(data, header, limit)
            if size < 2 or header + size > value_start:
                return None
            body = header + size
            column = 0
            found, found_end = -1, -1
            while cursor < header + size:
                serial, cursor = _varint(data, cursor, header + size)
                width = _serial_size(serial)
                if width < 0 or body + width > limit or column >= len(tree.columns):
                    return None
                if not _fits(serial, tree.type_of(column)):
                    return None
                ends = value_end in (-1, body + width)
                if body == value_start and ends and serial >= 13 and serial % 2:
                    found, found_end = column, body + width
                body += width
                column += 1
            if cursor != header + size or found < 0 or column != len(tree.columns):
                return None
            errors = "replace" if value_end == -1 else "strict"
            text = data[value_start:found_end].decode(self.encoding, errors=errors)
            return found, text, found_end
        except (_Unreadable, UnicodeDecodeError):
            return None

    def _tables(self, names: frozenset[str]) -> list[_Tree]:
        """The b-trees (tables and their indexes) of the tables named."""
        trees = {t.name: t for t in self.trees.values() if t.table in names}
        return [trees[name] for name in sorted(trees)]


def open_database(path: Path) -> tuple[Database, bool] | None:
    """The database a file is (or is the write-ahead log of), and whether it is the log;
    None if it is neither, or does not read as one."""
    in_wal = path.name.endswith("-wal")
    main = path.with_name(path.name[: -len("-wal")]) if in_wal else path
    try:
        main_bytes = main.read_bytes()
        wal_path = main.with_name(main.name + "-wal")
        wal_bytes = wal_path.read_bytes() if wal_path.is_file() else b""
        return Database(main_bytes, wal_bytes), in_wal
    except (OSError, _Unreadable, UnicodeDecodeError, struct.error, IndexError, ValueError):
        return None


class Rule(Protocol):
    """Which values of a database are no copy of a record, and where in a page's free
    space such a value may start and end (for a freed cell's, read back)."""

    tables: frozenset[str]

    def __call__(self, value: Value, start: int, end: int) -> bool: ...

    def anchors(self, data: bytes, start: int, end: int) -> list[tuple[int, int]]: ...


class AnyOf:
    """Several rules as one: a value any of them says is no copy is none."""

    def __init__(self, *rules: Rule) -> None:
        self.rules = rules
        self.tables = frozenset().union(*(rule.tables for rule in rules))

    def __call__(self, value: Value, start: int, end: int) -> bool:
        return any(rule(value, start, end) for rule in self.rules)

    def anchors(self, data: bytes, start: int, end: int) -> list[tuple[int, int]]:
        return sorted({span for rule in self.rules for span in rule.anchors(data, start, end)})


def excused(path: Path, spans: Iterable[tuple[int, int]], rule: Rule) -> bool:
    """Whether every span of ``path`` (a SQLite database or its write-ahead log) lies
    in a value ``rule`` says is no copy of a record (:meth:`Database.excused`)."""
    opened = open_database(path)
    if opened is None:
        return False
    database, in_wal = opened
    try:
        return all(database.excused(in_wal, start, end, rule) for start, end in spans)
    except (_Unreadable, UnicodeDecodeError, struct.error, IndexError, ValueError, RecursionError):
        return False  # a file that does not read as it should passes nothing over
