"""A server's journal of access records on their way to PostgreSQL.

With ``[serve] database_url`` the SB 34 access log is a table. An answer that waited for
its record's statement waited for a PostgreSQL backend to be scheduled, on a host that
also serves: 4 to 8 ms more than the file log at p99 (docs/benchmarks.md, "Serving
state"). So a request's records are written here first, one ``write`` on the event loop
as the file log's, and the answer goes out; :mod:`hotlist.audit.pg_loop` sends them to
the database behind it, chained there in the order its statements land. The rule the
file log keeps holds: no answer before its record is written where a crash of the
server cannot take it (the kernel has it), and written durably (``fsync``) by the log's
syncer and before a batch's answer. A server killed before its records reached the
database leaves them here; the next server on this ``data_dir`` sends them first.

The journal is access log: it lives under ``data_dir/audit/journal/`` and the purge's
verification searches it by the access log's rule (a removed plate only as the queried
element). A file all of whose records are in the database is scrubbed (overwritten,
fsynced, unlinked), so records stay here seconds, not days.

Lines, one JSON object each:

* a record: ``n`` (its number in this file), ``time``, and the record's fields;
* ``{"sending": n, "seq": S, "hash": H}``: records up to ``n`` went in a statement that
  makes ``S`` (with hash ``H``) the head; written before the statement is sent, so that
  after a crash it can be told whether that statement landed;
* ``{"sent": n}``: records up to ``n`` are in the database.

Several servers may share a ``data_dir`` (replicas on one host): each writes a file of its
own, locked (``flock``) while it lives; a server that starts takes over only files whose
lock is free, those of a server that died. A file is created under a name a starting
server does not take (``.opening``), locked, then renamed; the rename is not fsynced (it
would stall the event loop at each rotation), so after a power cut a file may be found
under its first name, and is read all the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotlist.audit.segments import audit_dir
from hotlist.config import ConfigError
from hotlist.private import PRIVATE_FILE
from hotlist.scrub import scrub_fd as scrub_fd  # tests watch it
from hotlist.store import private_dir

#: Under ``data_dir/audit``: the purge's verification searches it as access log.
JOURNAL_DIR = "journal"
#: A journal file all of whose records were sent is replaced once it is this large.
ROTATE_AT = 1 << 20
_SUFFIX, _OPENING = ".jsonl", ".opening"


def journal_dir(data_dir: Path) -> Path:
    return audit_dir(data_dir) / JOURNAL_DIR


@dataclass
class Left:
    """A dead server's journal file: its records not known to be in the database (by
    number), and the statements in flight when it died, if any: ``through`` and the
    ``(seq, hash)`` each would make the head (one statement, or several whose answers
    were lost, each sending the same records again; whether one landed, or still may, is
    the database's to tell)."""

    path: Path
    fd: int
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    in_doubt: tuple[int, list[tuple[int, str]]] | None = None

    def landed(self) -> None:
        """The statement in flight landed: its records are in the database."""
        assert self.in_doubt is not None
        through = self.in_doubt[0]
        self.records = [(n, r) for n, r in self.records if n > through]
        self.in_doubt = None

    def note(self, value: dict[str, Any]) -> None:
        """Append a ``sending`` or ``sent`` line, as the file's own server did."""
        _write_all(self.fd, _line(value))


class Journal:
    """This server's journal file; :meth:`dead` reads what dead servers left."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = private_dir(journal_dir(data_dir))
        self._lock = threading.Lock()  # the file descriptor, against the syncer's fsync
        self._fd, self.path = _create(self.folder)
        self.written = 0  # the number of the last record written to this file
        self._sent = 0
        self._size = 0

    def write(self, records: Sequence[dict[str, Any]]) -> int:
        """Write ``records`` (their fields, ``time`` included): the number of the last."""
        lines = [_line({"n": self.written + i, **f}) for i, f in enumerate(records, start=1)]
        self._append(b"".join(lines))
        self.written += len(lines)
        return self.written

    def sending(self, through: int, seq: int, hash_: str) -> None:
        self._append(_line({"sending": through, "seq": seq, "hash": hash_}))

    def sent(self, through: int) -> Retired | None:
        """Records up to ``through`` are in the database. A file of at least
        :data:`ROTATE_AT` all of whose records are is replaced by a new one: the old one
        is returned, for :meth:`Retired.scrub` (off the event loop: it writes and fsyncs
        the whole file)."""
        self._append(_line({"sent": through}))
        self._sent = through
        if self._sent == self.written and self._size >= ROTATE_AT:
            return self.rotate()
        return None

    def rotate(self) -> Retired:
        """Go on in a new file; the old one (every record in it sent) is returned."""
        fd, path = _create(self.folder)
        with self._lock:
            old = Retired(self.path, self._fd)
            self._fd, self.path = fd, path
            self.written = self._sent = self._size = 0
        return old

    def sync(self) -> None:
        """Make what was written durable (the log's syncer; before a batch's answer)."""
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)

    def close(self, scrub: bool = True) -> None:
        """At shutdown: scrubbed if every record was sent (and ``scrub``: they are durable
        in the database); else kept for the next server."""
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd < 0:
            return
        if scrub and self._sent == self.written:
            _scrub(self.path, fd)
        else:
            os.fsync(fd)
            os.close(fd)

    def _append(self, data: bytes) -> None:
        """Write ``data`` whole, or raise with none of it left in the file: a write a full
        disk cut short is taken back (overwritten, cut off), else the next line written
        would continue it and the file would read as damaged."""
        try:
            _write_all(self._fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                end = os.fstat(self._fd).st_size
                if end > self._size:
                    _overwrite(self.path, self._size, bytes(end - self._size))
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    @staticmethod
    def dead(data_dir: Path) -> list[Left]:
        """Every journal file on ``data_dir`` whose server is gone (its lock free), oldest
        first, read; each stays locked by this process until :func:`done_with` scrubs it."""
        folder = journal_dir(data_dir)
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            if not path.name.endswith((_SUFFIX, _OPENING)):
                continue
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
            except FileNotFoundError:  # its server scrubbed it meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live server's
                os.close(fd)
                continue
            if path.name.endswith(_OPENING) and os.fstat(fd).st_size == 0:
                os.close(fd)  # being created (or never written): not ours to take
                continue
            try:
                found.append(_read(path, fd))
            except BaseException:
                os.close(fd)
                for other in found:
                    os.close(other.fd)
                raise
        return found


@dataclass(frozen=True)
class Retired:
    """A journal file all of whose records are in the database, still open."""

    path: Path
    fd: int

    def scrub(self) -> None:
        _scrub(self.path, self.fd)

    def keep(self) -> None:
        """Leave it for the next server on this ``data_dir`` (its lock goes)."""
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)


def done_with(left: Left) -> None:
    """Scrub a dead server's file (its records are in the database now)."""
    _scrub(left.path, left.fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _create(folder: Path) -> tuple[int, Path]:
    """A new journal file, locked before it has a name a starting server takes as left
    (one it could take between the ``open`` and the ``flock``)."""
    stem = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
    opening = folder / (stem + _OPENING)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW
    fd = os.open(opening, flags, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a starting server may hold it for a moment
        path = opening.with_name(stem + _SUFFIX)
        os.rename(opening, path)  # not fsynced: a name lost in a crash is read as well
    except BaseException:
        os.close(fd)
        raise
    return fd, path


def _read(path: Path, fd: int) -> Left:
    """A dead server's file: its records after the last ``sent``, and the statement in
    flight. A torn last line (killed mid-write: its request was never answered) is
    ignored, and blanked in the file; a line that does not parse elsewhere is refused."""
    found = Left(path, fd)
    with os.fdopen(os.dup(fd), "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    torn = lines.pop()  # after the last newline: nothing, or a line cut short
    if torn:  # blanked and ended: a recovery's lines noted after it must not continue it
        _overwrite(path, len(data) - len(torn), b" " * (len(torn) - 1) + b"\n")
    sent = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():  # a torn line blanked by an earlier recovery
            continue
        try:
            value = json.loads(raw)
            if "sent" in value:
                sent = int(value["sent"])
            elif "sending" in value:
                through, made = int(value["sending"]), (int(value["seq"]), str(value["hash"]))
                if found.in_doubt is not None and found.in_doubt[0] == through:
                    found.in_doubt[1].append(made)  # the same records, sent again
                else:
                    found.in_doubt = (through, [made])
            else:
                found.records.append((int(value.pop("n")), value))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(
                f"the access log's journal {path}, line {number}, is not a journal line:"
                " the records after it cannot be sent to the database; move the file out of"
                f" {path.parent} after keeping a copy for the audit, then start again"
            ) from None
    found.records = [(n, r) for n, r in found.records if n > sent]
    if found.in_doubt is not None and found.in_doubt[0] <= sent:
        found.in_doubt = None
    return found


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    """Overwrite the file's bytes at ``offset`` with ``data``, in place, durably (the
    journal's own descriptors append wherever they write)."""
    writable = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        view = memoryview(data)
        while view:
            n = os.pwrite(writable, view, offset)
            view, offset = view[n:], offset + n
        os.fsync(writable)
    finally:
        os.close(writable)


def _scrub(path: Path, fd: int) -> None:
    """Overwrite, fsync, unlink, close (the lock goes with the descriptor)."""
    try:
        with contextlib.suppress(OSError):  # opened for writing: scrub_fd needs that
            os.fsync(fd)
        writable = os.open(path, os.O_WRONLY | os.O_NOFOLLOW) if _exists(path) else -1
        try:
            if writable >= 0:
                scrub_fd(writable)
        finally:
            if writable >= 0:
                os.close(writable)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _sync_dir(path.parent)
    finally:
        os.close(fd)


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
