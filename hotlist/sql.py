"""SQL text that cannot be bound as a parameter: identifiers and literals, quoted safely.

Values are always bound (``?``). DuckDB cannot bind a path in ``ATTACH`` or ``COPY ... TO``
or a table name, so those, and only those, go through these two functions.
"""

from __future__ import annotations

from pathlib import Path


def identifier(name: str) -> str:
    """A quoted SQL identifier: ``"name"``, with embedded double quotes doubled."""
    if "\x00" in name:
        raise ValueError("an SQL identifier cannot contain a NUL character")
    return '"' + name.replace('"', '""') + '"'


def literal(value: str | Path) -> str:
    """A quoted SQL string literal: ``'value'``, with embedded single quotes doubled."""
    text = str(value)
    if "\x00" in text:
        raise ValueError("an SQL string literal cannot contain a NUL character")
    return "'" + text.replace("'", "''") + "'"
