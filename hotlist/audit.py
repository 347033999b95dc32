"""The SB 34 access log: append-only, hash-chained JSON lines under ``data_dir/audit``.

Every access to hotlist data, granted or refused, is one record: time, the data element
used (the plate queried, or "full version N"), username, organization, purpose, outcome,
and where the request came from. Each record carries the SHA-256 of the previous one,
so an edit, a deletion or a reordering breaks the chain and ``hotlist audit verify``
names the first broken record. The log is kept at least a year (CJIS) and the purge
never touches it: it records who looked, which the law requires to outlive the record.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotlist.store import private_dir

GENESIS = "0" * 64


@dataclass(frozen=True)
class AccessRecord:
    user: str
    organization: str
    purpose: str
    data_element: str
    outcome: str  # granted | refused: <why>
    channel: str  # cli | api
    client: str = ""


def log_path(data_dir: Path) -> Path:
    return private_dir(data_dir / "audit") / "access.jsonl"


def _digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _last_line(fh: Any) -> bytes | None:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if size == 0:
        return None
    back = min(size, 8192)
    while True:
        fh.seek(size - back)
        tail = fh.read(back)
        lines = tail.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or back == size:
            return bytes(lines[-1])
        back = min(size, back * 2)


def append(
    data_dir: Path, record: AccessRecord, at: dt.datetime | None = None, sync: bool = True
) -> dict[str, Any]:
    """Append one record to the chain (serialized between processes by ``flock``).

    ``sync=False`` leaves the fsync to the caller (the API syncs in batches, see
    :class:`hotlist.serve.app.AccessLogSync`); the record is written either way."""
    path = log_path(data_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "rb+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        last = _last_line(fh)
        prev = json.loads(last) if last else None
        body = {
            "seq": (prev["seq"] + 1) if prev else 1,
            "time": (at or dt.datetime.now(dt.UTC)).isoformat(),
            **asdict(record),
            "prev": prev["hash"] if prev else GENESIS,
        }
        entry = {**body, "hash": _digest(body)}
        fh.seek(0, os.SEEK_END)
        fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=True).encode() + b"\n")
        fh.flush()
        if sync:
            os.fsync(fh.fileno())
    return entry


def records(data_dir: Path) -> Iterator[dict[str, Any]]:
    path = log_path(data_dir)
    if not path.exists():
        return
    with open(path, encoding="ascii") as fh:
        for line in fh:
            yield json.loads(line)


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    records: int
    problem: str | None = None


def verify_chain(data_dir: Path) -> ChainCheck:
    """Walk the chain; report the first record that was edited, removed or moved."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    path = log_path(data_dir)
    if not path.exists():
        return ChainCheck(True, 0)
    with open(path, encoding="ascii", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                entry = json.loads(line)
                body = {k: v for k, v in entry.items() if k != "hash"}
                stored = entry["hash"]
            except (ValueError, KeyError, AttributeError):
                return ChainCheck(False, count, f"line {line_no}: not a log record")
            if _digest(body) != stored:
                return ChainCheck(
                    False, count, f"line {line_no}: record was altered (hash mismatch)"
                )
            if entry.get("prev") != prev_hash:
                return ChainCheck(
                    False,
                    count,
                    f"line {line_no}: chain broken (a record before it was removed or moved)",
                )
            if entry.get("seq") != expected_seq:
                return ChainCheck(
                    False,
                    count,
                    f"line {line_no}: sequence {entry.get('seq')} where {expected_seq} was due",
                )
            prev_hash, expected_seq, count = stored, expected_seq + 1, count + 1
    return ChainCheck(True, count)


class AccessLogWriter:
    """A long-lived appender for a server process: keeps the file open and the chain's
    last hash in memory, re-reading the tail only when another process appended."""

    def __init__(self, data_dir: Path) -> None:
        self.path = log_path(data_dir)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._fh = os.fdopen(fd, "rb+", buffering=0)
        self._size = -1
        self._last: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def append(self, record: AccessRecord) -> None:
        with self._lock:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fh.fileno()).st_size
                if size != self._size:
                    last = _last_line(self._fh)
                    self._last = json.loads(last) if last else None
                prev = self._last
                body = {
                    "seq": (prev["seq"] + 1) if prev else 1,
                    "time": dt.datetime.now(dt.UTC).isoformat(),
                    **asdict(record),
                    "prev": prev["hash"] if prev else GENESIS,
                }
                entry = {**body, "hash": _digest(body)}
                line = json.dumps(entry, sort_keys=True, ensure_ascii=True).encode() + b"\n"
                os.write(self._fh.fileno(), line)
                self._last, self._size = entry, size + len(line)
            finally:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)

    def sync(self) -> None:
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self.sync()
        self._fh.close()
