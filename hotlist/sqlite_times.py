"""The times hotlist's own SQLite stores write, which a plate of the shape ``04T14`` may
stand in.

The serving registry (``serve/consumers.sqlite``: when a key was made, revoked, a
version acknowledged), the pulls seen (``serve/*.sqlite``: when a consumer last pulled)
and the access log's anchors (``audit-anchors/anchors.sqlite``: when each was made)
keep times as ISO 8601 text (``2026-12-04T14:47:08.123456+00:00``). A removed plate
``04T14`` stood in every such time of that day and hour, and failed every purge that
day's rows were kept. An occurrence that :mod:`hotlist.sqlite_cells` places wholly
inside a value of one of :data:`TIME_COLUMNS` that is a real time
(:data:`hotlist.chance.ISO_TIME`, whole) is that time's digits; in any other column, or
in a value that is no time, it is a finding as before. Freed times (a pull seen again
rewrites its row, a table's first page split leaves its rows behind in the page) count
where they read back as a time of such a record, whole, or, where a later write
overwrote its tail, to its minute at least.
"""

from __future__ import annotations

import re

from hotlist.chance import ISO_TIME
from hotlist.sqlite_cells import Value

#: The columns of hotlist's SQLite stores that hold a time and nothing else.
TIME_COLUMNS = frozenset(
    {
        ("consumers", "created_at"),
        ("consumers", "revoked_at"),
        ("consumers", "acked_at"),
        ("acks", "at"),
        ("last_seen", "pulled_at"),
        ("anchors", "at"),
    }
)
#: A time, whatever touches it: in a page, a value's first byte follows a header's or
#: another value's last, letters and digits among them.
_TIME = re.compile(ISO_TIME.pattern.removeprefix(r"\b").removesuffix(r"\b"))
#: A time's date, hour and minute: what stands of a freed time whose tail a later write
#: overwrote (in a page's free space, where the cell it was is no more).
_CUT = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]"
)
#: The longest time the stores write (microseconds and an offset).
_LONGEST = len("2026-12-04T14:47:08.123456+00:00")


class OwnTimes:
    """The rule of :mod:`hotlist.sqlite_cells` for the times of hotlist's stores."""

    tables = frozenset(table for table, _ in TIME_COLUMNS)

    def __call__(self, value: Value, start: int, end: int) -> bool:
        if (value.table, value.column) not in TIME_COLUMNS:
            return False
        if value.whole:
            return ISO_TIME.fullmatch(value.text) is not None
        cut = _CUT.match(value.text)  # a freed time whose tail was overwritten since
        return cut is not None and value.start <= start and end <= value.start + cut.end()

    def anchors(self, data: bytes, start: int, end: int) -> list[tuple[int, int]]:
        """Where a whole time that holds bytes ``start:end`` starts and ends, and where
        a time cut short after its minute that holds them starts (its end -1)."""
        low = max(start - _LONGEST, 0)
        window = data[low : end + _LONGEST].decode("latin-1")
        whole = [
            (low + found.start(), low + found.end())
            for found in _TIME.finditer(window)
            if low + found.start() <= start and end <= low + found.end()
        ]
        cut = [
            (low + found.start(), -1)
            for found in _CUT.finditer(window)
            if low + found.start() <= start and end <= low + found.end()
        ]
        return whole + cut
