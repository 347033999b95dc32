"""One access, as the SB 34 log records it (the chain adds seq, time, prev and hash)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccessRecord:
    user: str
    organization: str
    purpose: str
    data_element: str
    outcome: str  # granted: ... | refused: <why>
    channel: str  # cli | api | system
    client: str = ""

    def fields(self) -> dict[str, Any]:
        """The record's fields by name: ``dataclasses.asdict`` without its recursive copy
        (every field is a string): 0.3 µs instead of 7 µs, paid on every request."""
        return dict(vars(self))
