"""Checks of a landed file as a whole, before its lines are read (docs/formats.md section
4): its bytes (empty, encoding, line ends, cut short) and its own clock.

Each refusal names the file and what is true of it, never a value of a record.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

#: How far a source's clock may run ahead of ours. A file dated later than now plus this
#: is refused: applied, it would make every real file after it look like a replay.
CLOCK_TOLERANCE = dt.timedelta(minutes=15)
#: Bytes read from the start of a file to judge its encoding.
_HEAD_BYTES = 4096
#: Byte order marks of encodings the layouts do not read (UTF-32 before UTF-16: its
#: little-endian mark starts with UTF-16's).
_FOREIGN_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)


class FileRejected(Exception):
    """The whole file is refused; ``rule`` is a stable code, the message says where and why."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        #: Row issues of the file, when it was read far enough to have them.
        self.issues: pl.DataFrame | None = None


def check_bytes(path: Path) -> None:
    """Refuse a file that is empty, not ASCII/UTF-8 text, has CR-only line ends, or whose
    last line has no line end (cut short), each with its own rule and message."""
    name = path.name
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(size - 1, 0))
        last = fh.read(1)
    if size == 0:
        raise FileRejected("empty-file", f"{name}: the file is empty (0 bytes)")
    for mark, encoding in _FOREIGN_BOMS:
        if head.startswith(mark):
            raise FileRejected(
                "encoding",
                f"{name}: the file is {encoding} text (byte order mark {mark.hex(' ')});"
                " the layouts read ASCII or UTF-8 only",
            )
    if head.count(0) * 10 > len(head):
        raise FileRejected(
            "encoding",
            f"{name}: {head.count(0)} of the first {len(head)} bytes are NUL: not ASCII or"
            " UTF-8 text (UTF-16 or UTF-32 without a byte order mark, or binary)",
        )
    if last == b"\n":
        return
    if b"\n" not in head and b"\r" in head and not _has_newline(path):
        raise FileRejected(
            "line-ends",
            f"{name}: lines end with CR alone (no LF anywhere in the file);"
            " the layouts read LF or CRLF line ends",
        )
    if last == b"\r":
        raise FileRejected(
            "incomplete-last-line",
            f"{name}: the last line ends with CR alone, not LF or CRLF: the file was cut"
            " short or its line ends are mixed",
        )
    raise FileRejected(
        "incomplete-last-line",
        f"{name}: the last line is incomplete (no line end): the file was cut short",
    )


def _has_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            if b"\n" in block:
                return True
    return False


def check_extract_time(
    name: str, extract_time: dt.datetime, now: dt.datetime, from_header: bool
) -> None:
    """Refuse a file dated later than ``now`` plus :data:`CLOCK_TOLERANCE`."""
    if extract_time <= now + CLOCK_TOLERANCE:
        return
    where = "line 1: header time" if from_header else "modification time (no header)"
    raise FileRejected(
        "extract-time-future",
        f"{name} {where} {extract_time.isoformat()} is later than now"
        f" ({now.isoformat()}) plus {int(CLOCK_TOLERANCE.total_seconds() // 60)} minutes:"
        " the source's clock or the file is wrong. Refused, so that it cannot make every"
        " real file after it look older",
    )
