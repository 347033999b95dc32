"""The files whose content decides how a line is parsed and stored.

A content file records the parser's fingerprint (:attr:`hotlist.parse.Snapshot.parser`),
a SHA-256 over these files among other things: the next version copies an unchanged
line's entry from it only when the fingerprint is the same. The list is kept here, by
path, so that the parser can hash the store's code without importing it (the store
imports the parser).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: Modules of ``hotlist`` that decide what entry and warnings a line gives, and how the
#: entry is stored (its keys, its stored form).
PARSER_MODULES = (
    "parse.py",
    "parse_chunk.py",
    "rows.py",
    "issues.py",
    "quarantine.py",
    "lines.py",
    "normalize.py",
    "codes.py",
    "layout.py",
    "keyed.py",
    "columns.py",
    "nic.py",
    "store/chunks.py",
    "store/stream.py",
)


def parser_sources() -> tuple[Path, ...]:
    """The parser's source files, the entry contract and the code tables, in a fixed order."""
    package = Path(__file__).parent
    contracts = Path(str(resources.files("contracts")))
    return (
        *(package / module for module in PARSER_MODULES),
        contracts / "models.py",
        *sorted((contracts / "codes").glob("*.csv")),
    )
