"""One access, as the SB 34 log records it (the chain adds seq, time, prev and hash)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AccessRecord:
    user: str
    organization: str
    purpose: str
    data_element: str
    outcome: str  # granted: ... | refused: <why>
    channel: str  # cli | api | system
    client: str = ""
