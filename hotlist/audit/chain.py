"""Appending to the access log: keyed chain, monthly rotation, torn-tail recovery.

Each record carries ``seq`` (continuing across segments), ``prev`` (the ``hash`` of the
record before it, in whatever segment) and ``hash``: HMAC-SHA256 with the audit key over
the record's canonical JSON. Writers in every process take the append lock, read the head
only when the segment changed under them, and write each batch with one ``write``.

A server appends a record per request, so a record's line is built by
:class:`LineMaker`: the canonical JSON written out field by field (the same bytes as
:func:`hotlist.audit.keys.canonical`, which verification uses) and the HMAC from a keyed
state copied per record, 39 µs down to 13 µs a record here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hotlist.audit import anchors
from hotlist.audit.keys import GENESIS, load_key
from hotlist.audit.record import AccessRecord
from hotlist.audit.segments import (
    LOCK_NAME,
    Head,
    audit_dir,
    head_of,
    keep_torn_tail,
    month_of,
    read_tail,
    records_of,
    segment_name,
    segment_paths,
)
from hotlist.store import private_dir


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AccessLogWriter:
    """An appender; a server keeps one open (the segment and the append lock stay open,
    the head in memory, re-read only when another process appended or the month turned).
    Each batch takes the lock (``flock``) and releases it; the lock file is opened once,
    and again only if it was replaced."""

    def __init__(self, data_dir: Path, anchor_every: dt.timedelta = anchors.ANCHOR_EVERY) -> None:
        self.data_dir = data_dir
        self.folder = private_dir(audit_dir(data_dir))
        self._key = load_key(data_dir)
        self._lines = LineMaker(self._key)
        self._lock_path = str(self.folder / LOCK_NAME)
        self._anchor_every = anchor_every
        self._last_anchor = anchors.last_anchored(data_dir)
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._lock_ino = -1  # the open lock file's
        self._dirty = False  # written since the last fsync
        self._segment = ""
        self._segment_path = ""  # str(folder / _segment): stat per append, no pathlib
        self._month: tuple[int, int] | None = None  # the segment's
        self._size = -1
        self._segment_id = (-1, -1)  # the open segment's (inode, device)
        self._head = Head("", 0, GENESIS)
        self._mutex = threading.Lock()

    @property
    def path(self) -> Path:
        """The segment being written (the current month's once anything is appended)."""
        return self.folder / (self._segment or segment_name(_now()))

    def append(self, record: AccessRecord, at: dt.datetime | None = None) -> dict[str, Any]:
        return self.append_many([record], at)[0]

    def append_many(
        self, records: Iterable[AccessRecord], at: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """Chain and write ``records`` in one write (one lock, one head read at most)."""
        batch = records if type(records) is list else list(records)
        when = (at or _now()).astimezone(dt.UTC)
        with self._mutex:
            lock = self._lock()  # a plain try, not a context manager: once per request
            try:
                return self._append(batch, when)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(self, batch: list[AccessRecord], when: dt.datetime) -> list[dict[str, Any]]:
        """Under the mutex and the lock: chain ``batch`` after the head and write it."""
        notes = self._prepare(when)
        system = [
            AccessRecord("hotlist", "", "audit", note, "recovered", "system") for note in notes
        ]
        stamp = when.isoformat(timespec="microseconds")
        entries, lines = [], []
        for record in (*system, *batch):
            entry, line = self._lines.chained(self._head, stamp, record.fields())
            self._head = Head(self._segment, entry["seq"], entry["hash"])
            entries.append(entry)
            lines.append(line)
        data = b"".join(lines)
        assert self._fd is not None
        try:
            if os.write(self._fd, data) != len(data):
                raise OSError(f"short write to {self._segment}")
        except OSError:
            self._forget()  # the next append re-reads the head (and moves a torn tail)
            raise
        self._size += len(data)
        self._dirty = True
        anchor_due = self._last_anchor is None or when - self._last_anchor >= self._anchor_every
        if anchor_due:
            anchors.record(
                self.data_dir, self._key, self._head.segment, self._head.seq,
                self._head.hash, "anchor", "hourly", when,
            )  # fmt: skip
            self._last_anchor = when
        return entries[len(system) :]

    def _lock(self) -> int:
        """Take the writers' lock (every process's, see :func:`segments.append_lock`) on
        a descriptor kept open between batches; returns it (the caller unlocks it)."""
        path = self._lock_path
        fd = self._lock_fd
        if fd is not None:
            try:  # the open file's inode is its own for good: kept, not fstat'ed each time
                same = os.stat(path).st_ino == self._lock_ino
            except FileNotFoundError:
                same = False
            if not same:  # replaced or removed: a lock on it would exclude no one
                os.close(fd)
                fd = self._lock_fd = None
        if fd is None:
            fd = self._lock_fd = os.open(
                private_dir(self.folder) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600
            )
            self._lock_ino = os.fstat(fd).st_ino
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _prepare(self, when: dt.datetime) -> list[str]:
        """Make the open segment the one to write, its head known; seal a past month's
        segment; move a torn tail out. Returns what was recovered (to be logged)."""
        if self._fd is not None:
            # One stat of the segment's name: the file there is the open one (the open
            # file's device and inode are its own for good, kept from its opening), and
            # its size is what this writer left (no other process appended since).
            try:
                st = os.stat(self._segment_path)
                unchanged = (st.st_ino, st.st_dev, st.st_size) == (*self._segment_id, self._size)
            except FileNotFoundError:
                unchanged = False
            if unchanged and not self._month_turned(when):
                return []
            self._forget()
        paths = segment_paths(self.data_dir)
        newest = paths[-1] if paths else None
        notes: list[str] = []
        if newest is not None:
            try:
                fd: int | None = os.open(newest, os.O_RDWR | os.O_APPEND)
            except PermissionError:  # sealed (0400) and this process is not its owner
                fd = None
            if fd is not None:
                tail = read_tail(fd)
                if tail.torn:
                    notes.append(keep_torn_tail(newest, fd, tail, self._key, when))
                if self._month_turned(when, newest.name):
                    os.close(fd)
                else:
                    self._fd = fd
                    self._name_segment(newest.name)
        if self._fd is None:
            if newest is not None:
                self._seal(newest, head_of(paths))
            self._name_segment(segment_name(when))
            self._fd = os.open(
                self.folder / self._segment, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600
            )
        st = os.fstat(self._fd)
        self._size, self._segment_id = st.st_size, (st.st_ino, st.st_dev)
        self._head = head_of(segment_paths(self.data_dir))
        return notes

    def _name_segment(self, name: str) -> None:
        self._segment = name
        self._segment_path = str(self.folder / name)
        self._month = month_of(name)

    def _forget(self) -> None:
        if self._fd is not None:
            if self._dirty:  # what was written to it gets to disk before it is let go
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
                self._dirty = False
            os.close(self._fd)
        self._fd, self._size = None, -1

    def _month_turned(self, when: dt.datetime, name: str | None = None) -> bool:
        """Is ``when`` in a later month than the segment? (A record stamped in the past
        goes to the newest segment: segments are never reopened once sealed.)"""
        month = month_of(name) if name is not None else self._month
        return month is None or (when.year, when.month) > month

    def _seal(self, path: Path, head: Head) -> None:
        """Record where a finished segment ends in the chain; make the file read-only."""
        if not any(
            a.kind == "seal" and a.segment == path.name for a in anchors.stored(self.data_dir)
        ):
            anchors.record(
                self.data_dir, self._key, path.name, head.seq, head.hash, "seal", "rotation"
            )
        path.chmod(0o400)

    def sync(self) -> None:
        """fsync what was written; safe from another thread (a server's syncer) while
        appends go on and the segment may be switched under it."""
        with self._mutex:
            if not self._dirty:  # nothing new: a server's idle syncer costs nothing
                return
            self._dirty = False  # an append during the fsync below sets it again
            fd = os.dup(self._fd) if self._fd is not None else None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        self.sync()
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _json_value(value: Any) -> str:
    """A value as :func:`hotlist.audit.keys.canonical` writes it (text escaped by the
    same C function)."""
    if type(value) is str:
        return _escape(value)
    if type(value) is int:
        return int.__repr__(value)
    # Anything else: the generic encoder, with canonical()'s rules.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


_escape = json.encoder.encode_basestring_ascii  # what json.dumps(ensure_ascii=True) uses


class LineMaker:
    """A chained record's entry and line: the line is ``canonical(entry)``, the ``hash``
    the HMAC over ``canonical(body)`` (the entry without it), as verification checks.

    Both JSON texts are filled in from two templates made once per set of field names
    (the names in sorted order, escaped, ``hash``'s place in the line fixed), each value
    escaped once by the C function ``json`` uses, instead of two ``json.dumps`` of two
    dictionaries; the key's HMAC state is computed once and copied per record."""

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self._names: tuple[str, ...] = ()
        self._order: tuple[str, ...] = ()
        self._split = 0
        self._signed = self._line = ""

    def _layout(self, names: tuple[str, ...]) -> None:
        ordered = sorted(names)  # canonical JSON sorts the keys
        self._names = names
        self._order = tuple(ordered)
        self._split = sum(1 for n in ordered if n < "hash")  # where "hash" goes in the entry
        slots = [_escape(n).replace("%", "%%") + ":%s" for n in ordered]
        self._signed = "{" + ",".join(slots) + "}"
        slots.insert(self._split, '"hash":"%s"')
        self._line = "{" + ",".join(slots) + "}\n"

    def chained(
        self, head: Head, time: str, fields: dict[str, Any]
    ) -> tuple[dict[str, Any], bytes]:
        """(The entry, its line) for the record with ``fields`` after ``head``."""
        body = {"seq": head.seq + 1, "time": time, **fields, "prev": head.hash}
        names = tuple(body)
        if names != self._names:
            if "hash" in body:
                raise ValueError("a record's fields must not include hash")
            self._layout(names)
        values = tuple(
            [
                _escape(v) if type(v) is str else _json_value(v)
                for v in map(body.__getitem__, self._order)
            ]
        )
        signed = self._keyed.copy()
        signed.update((self._signed % values).encode())
        digest = signed.hexdigest()
        split = self._split
        body["hash"] = digest
        return body, (self._line % (*values[:split], digest, *values[split:])).encode()


def append_files(
    data_dir: Path, records: Iterable[AccessRecord], at: dt.datetime | None = None,
    sync: bool = True,
) -> list[dict[str, Any]]:  # fmt: skip
    """Append to the files of ``data_dir`` and close (for a process that writes once)."""
    writer = AccessLogWriter(data_dir)
    try:
        entries = writer.append_many(records, at)
        if sync:
            writer.sync()
        return entries
    finally:
        writer.close()


def recover_torn_tail(data_dir: Path) -> None:
    """Move a torn tail a crash left in the newest segment into its evidence file (logged as
    a system record, the queried element in its own field); nothing else is written, and
    nothing at all when there is no log yet."""
    if segment_paths(data_dir):
        append_files(data_dir, [])


def log_path(data_dir: Path) -> Path:
    """The newest segment (where the next record goes, unless the month turns)."""
    paths = segment_paths(data_dir)
    return paths[-1] if paths else audit_dir(data_dir) / segment_name(_now())


def file_records(data_dir: Path, since: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every whole record of the files, oldest first, across segments (torn lines skipped)."""
    for path in segment_paths(data_dir):
        month = month_of(path.name)
        if since is not None and month is not None and month < (since.year, since.month):
            continue
        for entry in records_of(path):
            if since is None or dt.datetime.fromisoformat(entry["time"]) >= since:
                yield entry
