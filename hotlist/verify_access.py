"""The SB 34 access log, searched precisely: the one lawful place of a removed plate.

By law the access log keeps the data element each access used: the plate that was
queried. So a removed plate may appear in a log record **only** in the field that records
what was queried (``element``, or ``data_element`` in older records). Anything else of a
removed record anywhere in the log is a finding: its plate in any other field (what a hit
returned, a note), its NIC in any field (the queried element included: a lookup is by
plate), or either in a line that is not a JSON record (a torn tail, a line written by
something else), which is searched as raw bytes. ``docs/inventory.md`` states the rule.

The log may be one file or segments (rotated, possibly compressed) under
``data_dir/audit``: every file there is read as JSON lines. In PostgreSQL (``[serve]
database_url``) its records are searched the same way, each as its canonical JSON.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from hotlist.audit.keys import canonical
from hotlist.chance import ISO_TIME, NUMBER_CHARS, stands
from hotlist.scan import (
    BATCH,
    BLOCK,
    MIN_SCAN_LEN,
    ByteSearch,
    Hits,
    Unverifiable,
    open_decoded,
    raw_patterns,
)

#: The fields of an access record that record what was queried (SB 34's data element).
QUERIED_FIELDS = frozenset({"element", "data_element"})
#: Numbers the log writes of its own: the chain's sequence number. A removed plate of
#: digits equal to one (``12345``, once the log has that many records) is that number.
LOG_NUMBERS = frozenset({"seq"})
#: The field the log writes the time of each access in: written as a time
#: (:data:`~hotlist.chance.ISO_TIME`), a removed ``04T14`` in it is a day and an hour.
LOG_TIMES = frozenset({"time"})

#: Texts whose markers are remembered per search (each a few dozen bytes).
SEEN_TEXTS = 100_000

_OUTSIDE = "holds content of a removed record (only the queried element may hold its plate)"
_NOT_JSON = "raw bytes (not a JSON record) hold content of a removed record"


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object of a log line, each key once: the log never repeats one, and a value
    hidden behind a repeated key (JSON keeps the last) is not in the record judged, though
    its bytes hit and a field written as the log writes it (a time) may explain them."""
    record = dict(pairs)
    if len(record) != len(pairs):
        raise ValueError("a key repeated in a log line")
    return record


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value (keys included), with where it sits."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, str(key)
            yield from _strings(inner, here)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _strings(inner, f"{path}[{i}]")


def _numbers(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every number in a JSON value, as JSON writes it, with where it sits."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield path, json.dumps(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _numbers(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _numbers(inner, f"{path}[{i}]")


def _lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Blocks of whole lines with the number of the first; the last may be torn."""
    number, carry = 1, b""
    while block := fh.read(BLOCK):
        data = carry + block
        cut = data.rfind(b"\n") + 1
        chunk, carry = data[:cut], data[cut:]
        if chunk:
            yield number, chunk
            number += chunk.count(b"\n")
    if carry:
        yield number, carry


class _Markers:
    """Markers looked up by what a string holds, not the string by every marker: a line
    that hits is judged in time that follows its length, however many records await
    purge (looking each of 16,000 markers up in every field of every line that hit took
    hours once removed plates had been queried tens of thousands of times)."""

    def __init__(self, markers: list[str]) -> None:
        self.whole = frozenset(markers)
        self.long = frozenset(m for m in markers if len(m) >= MIN_SCAN_LEN)
        self.lengths = sorted({len(m) for m in self.long})
        #: No marker has a lowercase letter (plates and NICs never do): inside a text of
        #: digits and lowercase hexadecimal letters (the chain's HMACs) longer than every
        #: marker, only a marker of digits can occur, and it always has such a character
        #: beside it: by the chance rule (:func:`~hotlist.chance.edges`) it is no plate.
        self._hex_clear = not any(c.islower() for m in self.long for c in m)
        self._longest = max(self.lengths, default=0)
        #: What strings that recur on every line (keys, users, purposes) hold, once each.
        self._seen: dict[str, frozenset[str]] = {}

    def inside(self, text: str) -> frozenset[str]:
        """The markers long enough to be searched inside text that ``text`` contains."""
        known = self._seen.get(text)
        if known is not None:
            return known
        if self._hex_clear and len(text) > self._longest and set(text) <= NUMBER_CHARS:
            return frozenset()
        found = frozenset(
            text[i : i + n]
            for n in self.lengths
            for i in range(len(text) - n + 1)
            if text[i : i + n] in self.long
        )
        if len(self._seen) < SEEN_TEXTS:
            self._seen[text] = found
        return found


class AccessLogSearch:
    """Searches access log files for plates (outside the queried field) and record ids."""

    def __init__(
        self, plates: list[str], record_ids: list[str], plate_patterns: list[bytes] | None = None
    ) -> None:
        """``plate_patterns``: ``raw_patterns(plates)``, when the caller has them already."""
        self.plates = sorted({p for p in plates if p})
        self.record_ids = sorted({r for r in record_ids if r})
        self._plate_set = _Markers(self.plates)
        self._id_set = _Markers(self.record_ids)
        self._plate_patterns = plate_patterns
        self._any: ByteSearch | None = None
        self._building = threading.Lock()  # log files may be searched on several threads

    @property
    def any(self) -> ByteSearch:
        """Built on first use: most verifications have no access log to search."""
        with self._building:
            if self._any is None:
                # Short plates match by chance inside text: they are looked for as whole
                # JSON string values only (quoted), and matched whole in the parsed record.
                quoted = [f'"{p}"'.encode() for p in self.plates if len(p) < MIN_SCAN_LEN]
                plates = self._plate_patterns
                if plates is None:
                    plates = raw_patterns(self.plates)
                patterns = {*plates, *raw_patterns(self.record_ids), *quoted}
                self._any = ByteSearch(sorted(patterns))
            return self._any

    @staticmethod
    def _holds(text: str, markers: _Markers) -> bool:
        """A marker as the whole value, or (long enough not to match by chance) inside it
        where it can be a plate (:func:`~hotlist.chance.stands`)."""
        return text in markers.whole or any(stands(text, m) for m in markers.inside(text))

    def _record(self, record: dict[str, Any]) -> list[str]:
        """The fields of one parsed record that hold content of a removed record: text
        that holds it, or a number (other than the log's own) that is a removed plate or
        NIC written as a number."""
        return [
            where
            for where, text in _strings(record, "")
            if not (where in LOG_TIMES and ISO_TIME.fullmatch(text))
            and (
                self._holds(text, self._id_set)
                or (where not in QUERIED_FIELDS and self._holds(text, self._plate_set))
            )
        ] + [
            where
            for where, text in _numbers(record, "")
            if where not in LOG_NUMBERS
            and (
                text.lstrip("-") in self._id_set.whole or text.lstrip("-") in self._plate_set.whole
            )
        ]

    def scan(self, path: Path) -> Hits:
        """Every place in one log file (``line N:field``) holding content of a removed record.

        Blocks of lines are searched several at a time (up to :data:`~hotlist.scan.BATCH`
        bytes: one automaton each time), and the lines of a block that hits one by one."""
        if not (self.plates or self.record_ids):
            return []
        found: Hits = []
        try:
            with open(path, "rb") as raw:
                if raw.peek(1) == b"":  # an empty file (the append lock): nothing to build for
                    return []
                kind, fh = open_decoded(raw)
                if kind != "raw":
                    raise Unverifiable(f"an access log segment in a format not read here ({kind})")
                batch: list[tuple[int, bytes]] = []
                for first, chunk in _lines(fh):
                    batch.append((first, chunk))
                    if sum(len(c) for _, c in batch) >= BATCH:
                        found += self._blocks(batch)
                        batch = []
                found += self._blocks(batch)
        except (OSError, EOFError) as exc:
            raise Unverifiable(f"cannot be read ({type(exc).__name__}: {exc})") from None
        return found

    def _blocks(self, batch: list[tuple[int, bytes]]) -> Hits:
        """The lines of a batch of blocks, searched in one call (one automaton: building
        it costs more than searching a block, and a block with one lawful query of a
        removed plate in it, as most have, was searched a second time line by line)."""
        numbers: list[int] = []
        lines: list[bytes] = []
        for first, chunk in batch:
            parts = chunk.split(b"\n")
            numbers += range(first, first + len(parts))
            lines += parts
        found: Hits = []
        for number, line, hit in zip(numbers, lines, self.any.hits(lines), strict=True):
            if hit:
                found += self._line(number, line)
        return found

    def scan_records(self, records: Iterable[dict[str, Any]]) -> Hits:
        """Every place (``record SEQ:field``) in records that are not lines of a file (the
        log in PostgreSQL) holding content of a removed record: each record searched as
        its canonical JSON, as the file log's lines are, then field by field.

        Records are searched up to :data:`~hotlist.scan.BATCH` bytes of JSON at a time
        (one automaton each time), held as that JSON only: a record that hits is read
        back from it (the canonical JSON of JSON values, so the same fields and strings)."""
        if not self.any.patterns:
            return []
        found: Hits = []
        batch: list[bytes] = []
        size = 0
        for record in records:
            batch.append(canonical(record))
            size += len(batch[-1])
            if size >= BATCH:
                found += self._records(batch)
                batch, size = [], 0
        return found + self._records(batch)

    def _records(self, lines: list[bytes]) -> Hits:
        found: Hits = []
        for line, hit in zip(lines, self.any.hits(lines), strict=True):
            if not hit:
                continue
            record = json.loads(line)
            where = f"record {record.get('seq', '?')}"
            places = self._record(record)
            found += [(f"{where}:{field}", _OUTSIDE) for field in places]
            if not places and not self._explained(record):
                found.append((where, "holds content of a removed record"))
        return found

    def _line(self, number: int, line: bytes) -> Hits:
        """The places of one line whose raw bytes hit."""
        try:
            record = json.loads(line, object_pairs_hook=_once)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            return [(f"line {number}", _NOT_JSON)]
        places = self._record(record)
        found = [(f"line {number}:{where}", _OUTSIDE) for where in places]
        if not places and not self._explained(record):
            found.append((f"line {number}", "raw bytes hold content of a removed record"))
        return found

    def _explained(self, record: dict[str, Any]) -> bool:
        """A line whose raw bytes hit but whose fields are clean: the hit must be a plate in
        the queried field (the only place it is allowed), or digits of a number (the log's
        sequence number, a count: numbers that are no marker)."""
        return (
            any(
                isinstance(record.get(f), str) and self._holds(record[f], self._plate_set)
                for f in QUERIED_FIELDS
            )
            or any(
                isinstance(record.get(f), str)
                and ISO_TIME.fullmatch(record[f]) is not None
                and self._holds(record[f], self._plate_set)
                for f in LOG_TIMES
            )
            or any(
                self._holds(text, self._plate_set) or self._holds(text, self._id_set)
                for _, text in _numbers(record, "")
            )
        )
