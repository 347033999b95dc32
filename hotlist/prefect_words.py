"""The words Prefect writes into its own database for every run: its state types.

Every flow and task run passes through ``PENDING``, ``RUNNING`` and ``COMPLETED`` (or
``FAILED``, ``CRASHED``, ...), and Prefect's database keeps each as a value: the state
type of a run and of each of its states, and inside the JSON of the events it emits
(``"to": "RUNNING"``, ``"prefect.state-type": "RUNNING"``). A removed vanity plate that
spells one of them (or five or more letters of one, ``UNNING``) stood in those bytes and
failed every purge that searches ``PREFECT_HOME``, for good.

An occurrence is Prefect's state type, not a copy of a record, where
:mod:`hotlist.sqlite_cells` places it wholly inside

* a value of a state-type column (:data:`STATE_COLUMNS`) that is exactly a state type, in
  a live cell or in a freed cell that reads back as a whole record of its table; or
* a JSON string that is exactly a state type and the value of a state key
  (:data:`STATE_KEYS`), in a JSON column of Prefect's events (:data:`EVENT_COLUMNS`),
  in a live cell, the whole value parsing as JSON.

Anywhere else (a log line, a parameter, a result, a state message, a free page) it is a
finding, as before. ``docs/inventory.md``, "Words of Prefect's database", states it for
operators.
"""

from __future__ import annotations

import json
import re

from hotlist.sqlite_cells import Value

#: Prefect's state types (``prefect.client.schemas.objects.StateType``; a test keeps the
#: two the same).
STATE_TYPES = frozenset(
    {
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "CRASHED",
        "PAUSED",
        "CANCELLING",
    }
)
#: Columns that hold a state type and nothing else (and the indexes on them).
STATE_COLUMNS = frozenset(
    {
        ("flow_run", "state_type"),
        ("task_run", "state_type"),
        ("flow_run_state", "type"),
        ("task_run_state", "type"),
    }
)
#: JSON columns of Prefect's events, and the keys under which they hold a state type.
EVENT_COLUMNS = frozenset(
    {
        ("events", "payload"),
        ("events", "resource"),
        ("events", "related"),
        ("event_resources", "resource"),
    }
)
STATE_KEYS = frozenset({"from", "to", "type", "prefect.state-type"})
#: Columns of definitions, never data: the block types Prefect registers with every new
#: database, its own and its collections' (descriptions, code examples with
#: ``POSTGRESQL``, ``SELECT``, ``123456789``, the schemas' JSON with ``65536``), or a
#: developer registers; the keys of Prefect's own configuration (``TELEMETRY_SESSION``).
#: A block's data (``block_document``) and a configuration's value are searched as before.
DEFINITION_COLUMNS = frozenset(
    [
        ("block_type", column)
        for column in (
            "name",
            "slug",
            "logo_url",
            "documentation_url",
            "description",
            "code_example",
        )
    ]
    + [("block_schema", column) for column in ("fields", "checksum", "capabilities", "version")]
    + [("configuration", "key")]
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_COLON = re.compile(r"\s*:\s*")
_LONGEST = max(len(word) for word in STATE_TYPES)


class PrefectStates:
    """The rule of :mod:`hotlist.sqlite_cells` for Prefect's state types."""

    tables = frozenset(table for table, _ in STATE_COLUMNS | EVENT_COLUMNS | DEFINITION_COLUMNS)

    def __call__(self, value: Value, start: int, end: int) -> bool:
        place = (value.table, value.column)
        if place in STATE_COLUMNS:
            return value.text in STATE_TYPES
        if place in EVENT_COLUMNS:
            return _state_in_json(value, start, end)
        return place in DEFINITION_COLUMNS

    def anchors(self, data: bytes, start: int, end: int) -> list[tuple[int, int]]:
        """Where a state type that holds bytes ``start:end`` whole would start and end."""
        spans: list[tuple[int, int]] = []
        window = data[max(start - _LONGEST, 0) : end + _LONGEST]
        offset = max(start - _LONGEST, 0)
        for word in sorted(STATE_TYPES):
            encoded = word.encode()
            at = window.find(encoded)
            while at >= 0:
                if offset + at <= start and end <= offset + at + len(encoded):
                    spans.append((offset + at, offset + at + len(encoded)))
                at = window.find(encoded, at + 1)
        return spans


def _state_in_json(value: Value, start: int, end: int) -> bool:
    """Whether bytes ``start:end`` of the file lie in a JSON string of ``value`` that is
    exactly a state type under a state key. Outside a JSON string no ``"`` stands, so
    the strings of a text that parses as JSON are found from its start."""
    text = value.text
    if not text.isascii():
        return False  # offsets in the file are bytes; these values are ASCII
    try:
        json.loads(text)
    except ValueError:
        return False
    low, high = start - value.start, end - value.start
    previous: re.Match[str] | None = None
    for token in _STRING.finditer(text):
        if token.start() < low and high < token.end():
            if previous is None or not _COLON.fullmatch(text, previous.end(), token.start()):
                return False
            return (
                json.loads(previous.group()) in STATE_KEYS
                and json.loads(token.group()) in STATE_TYPES
            )
        if token.start() >= high:
            return False
        previous = token
    return False
