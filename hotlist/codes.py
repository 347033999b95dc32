"""NCIC code tables (states and provinces, plate types, makes, models, styles, colours).

The tables are CSV files in ``contracts/codes``; NCIC adds and retires codes about
quarterly, so an agency updates them by editing data, not code.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources


def _rows(table: str) -> list[dict[str, str]]:
    ref = resources.files("contracts") / "codes" / f"{table}.csv"
    with ref.open("r", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@cache
def codes(table: str) -> frozenset[str]:
    """The set of valid codes of ``table`` (``states``, ``makes``, ``colours``, ...)."""
    return frozenset(row["code"] for row in _rows(table))


@cache
def models() -> frozenset[str]:
    """Valid ``MAKE/MODEL`` pairs."""
    return frozenset(f"{row['make']}/{row['code']}" for row in _rows("models"))


@cache
def state_aliases() -> dict[str, str]:
    """Legacy state/province codes and their current code (``PQ`` -> ``QC``)."""
    return {r["legacy"]: r["code"] for r in _rows("aliases") if r["field"] == "state"}


@cache
def hit_type_lists() -> dict[str, str]:
    """NCIC hit type letter -> hotlist list name (``V`` -> ``stolen_vehicle``)."""
    return {r["code"]: r["list"] for r in _rows("hit_types")}


@cache
def code_shapes() -> dict[str, str]:
    """Code field -> the pattern every value of it must match (``colour`` -> ``BLK/WHI``).

    A value of another shape is not a code: it is a row error, never stored.
    """
    return {r["field"]: r["pattern"] for r in _rows("shapes")}
