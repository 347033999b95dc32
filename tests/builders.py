"""Builders of upstream files at the reference layouts (docs/formats.md), for tests to read as specs."""

from __future__ import annotations

import os
from pathlib import Path


def clew_line(plate: str, state: str = "CA", county: str = "19", date: str = "20240105") -> str:
    """A CLEW SVS record line: plate 0-8, state 8-10, county 10-12, date 12-20."""
    return f"{plate:<8}{state:<2}{county:<2}{date}"


def clew_file(
    records: list[str], header: str = "DATE11/22/2026 08:00", count: int | None = None
) -> str:
    trailer = f"TOTAL RECORD {len(records) if count is None else count:07d}"
    return "\n".join([header, *records, trailer]) + "\n"


def ncic_line(
    nic: str,
    plate: str,
    state: str = "CA",
    *,
    ori: str = "CA0190000",
    date: str = "20240105",
    plate_year: str = "2025",
    plate_type: str = "PC",
    vehicle_year: str = "2019",
    make: str = "TOYT",
    model: str = "CAM",
    style: str = "4D",
    colour: str = "BLK",
) -> str:
    """An NCIC extract record line at the reference offsets (docs/formats.md section 2)."""
    return (
        f"{nic:<10}{ori:<9}{date:<8}{plate:<10}{state:<2}{plate_year:<4}{plate_type:<2}"
        f"{vehicle_year:<4}{make:<4}{model:<3}{style:<2}{colour}"
    )


def ncic_file(records: list[str], stamp: str = "202611220800") -> str:
    return "\n".join([f"NCIC LPR EXTRACT {stamp}", *records]) + "\n"


class Drop:
    """An upstream drop folder served as a file:// source."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._tick = 1_700_000_000

    def put(self, name: str, text: str | bytes) -> Path:
        path = self.root / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        self._tick += 60  # a new upstream file has a new mtime
        os.utime(path, (self._tick, self._tick))
        return path
