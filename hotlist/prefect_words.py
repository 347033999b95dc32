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
#: Where in a run's state-change event a state type stands: its payload's intended
#: transition and the states before and after; the run's resource's state label (in
#: ``resource``, or in ``related`` as one of its resources: the list's index is ``*``).
STATE_PATHS = {
    "payload": frozenset(
        {
            ("intended", "from"),
            ("intended", "to"),
            ("initial_state", "type"),
            ("validated_state", "type"),
        }
    ),
    "resource": frozenset({("prefect.state-type",)}),
    "related": frozenset({("*", "prefect.state-type")}),
}
#: The events Prefect emits for a run's state changes, and the resources of its runs.
RUN_EVENTS = ("prefect.flow-run.", "prefect.task-run.")
RESOURCE_ID = "prefect.resource.id"
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
    exactly a state type, at a place of a run's state-change event where Prefect writes
    one (:data:`STATE_PATHS`): in the payload of an event named for a flow or task run,
    or as the state label of a resource that is a flow or task run."""
    text = value.text
    if not text.isascii():
        return False  # offsets in the file are bytes; these values are ASCII
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return False
    low, high = start - value.start, end - value.start
    placed = next(
        ((path, string) for path, at, to, string in _strings(text) if at < low and high < to),
        None,
    )
    if placed is None or placed[1] not in STATE_TYPES:
        return False
    path, _ = placed
    row = dict(value.row)
    if value.column == "payload":
        event = row.get("event")
        return (
            isinstance(event, str)
            and event.startswith(RUN_EVENTS)
            and path in STATE_PATHS["payload"]
        )
    generic = tuple("*" if isinstance(step, int) else step for step in path)
    if generic not in STATE_PATHS[value.column]:
        return False
    resource = parsed
    for step in path[:-1]:
        resource = resource[step]
    identity = resource.get(RESOURCE_ID) if isinstance(resource, dict) else None
    if value.table == "event_resources":  # the resource's id is a column of its own
        identity = row.get("resource_id")
    return isinstance(identity, str) and identity.startswith(RUN_EVENTS)


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]')


def _strings(text: str) -> list[tuple[tuple[str | int, ...], int, int, str]]:
    """Every string value of a JSON text (which parses), with its path (keys, and list
    indexes) and where its token starts and ends. Outside a string no ``"`` stands, so
    tokens are found from the text's start."""
    found: list[tuple[tuple[str | int, ...], int, int, str]] = []
    stack: list[list[object]] = []  # [container, key or index]
    expect_key = False
    for token in _TOKEN.finditer(text):
        piece = token.group()
        if piece in ("{", "["):
            stack.append([piece, None if piece == "{" else 0])
            expect_key = piece == "{"
        elif piece in ("}", "]"):
            stack.pop()
            expect_key = False
        elif piece == ":":
            expect_key = False
        elif piece == ",":
            if stack and stack[-1][0] == "[":
                stack[-1][1] = int(stack[-1][1]) + 1  # type: ignore[call-overload]
            expect_key = bool(stack) and stack[-1][0] == "{"
        elif expect_key:
            stack[-1][1] = json.loads(piece)
        else:
            path = tuple(step[1] for step in stack)
            found.append((path, token.start(), token.end(), json.loads(piece)))  # type: ignore[arg-type]
    return found
