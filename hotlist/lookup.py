"""Plate lookups across every list, reading the current immutable content files.

A lookup never opens the control database and never starts Prefect: it reads
``state.json`` and queries each feed's current content file read-only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from hotlist import normalize as norm
from hotlist.store.state import read_state

SOURCE_OF_FEED = {"svs": "clew-svs", "sfr": "clew-svs", "slr": "clew-svs", "ncic": "ncic"}


@dataclass(frozen=True)
class Hit:
    entry_id: int
    list: str
    feed: str
    source: str
    record_id: str | None
    plate: str
    state: str
    record_date: dt.date
    ori: str | None
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "record_date": self.record_date.isoformat()}


def describe_vehicle(row: dict[str, Any]) -> str:
    """Year, make, model, style, colour, plate type, county: what an officer reads."""
    parts = [
        str(row["vehicle_year"]) if row.get("vehicle_year") else None,
        row.get("make"),
        row.get("model"),
        row.get("style"),
        row.get("colour"),
        f"plate type {row['plate_type']}" if row.get("plate_type") else None,
        f"county {row['county']}" if row.get("county") else None,
    ]
    return " ".join(p for p in parts if p) or "-"


def _query(path: Path, plate: str, state: str | None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        sql = "SELECT * FROM entries WHERE plate = ?"
        params: list[Any] = [plate]
        if state:
            sql += " AND state = ?"
            params.append(state)
        rel = con.execute(sql + " ORDER BY entry_id", params)
        names = [d[0] for d in rel.description or []]
        return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]
    finally:
        con.close()


def find_hits(data_dir: Path, plate: str, state: str | None = None) -> list[Hit]:
    """Exact hits for a plate (normalized like the lists are), optionally in one state."""
    wanted = norm.plate_value(plate)
    wanted_state = norm.state_value(state) if state else None
    for attempt in range(3):
        feeds = read_state(data_dir)["feeds"]
        try:
            rows = [
                row
                for info in feeds.values()
                if info.get("content_file")
                for row in _query(data_dir / info["content_file"], wanted, wanted_state)
            ]
            break
        except duckdb.IOException:
            # A writer replaced a version between reading state.json and opening it.
            if attempt == 2:
                raise
    return [
        Hit(
            entry_id=int(r["entry_id"]),
            list=r["list"],
            feed=r["feed"],
            source=SOURCE_OF_FEED.get(r["feed"], r["feed"]),
            record_id=r["record_id"],
            plate=r["plate"],
            state=r["state"],
            record_date=r["record_date"],
            ori=r["ori"],
            description=describe_vehicle(r),
        )
        for r in rows
    ]


class NoHotlistLoaded(LookupError):
    """No feed has a loaded version where the configuration points.

    A lookup there would answer "no hits" for every plate; for a hotlist that answer,
    caused by a mistyped ``data_dir``, is dangerous, so it is an error instead."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(f"no hotlist loaded at {data_dir}")
        self.data_dir = data_dir


def loaded_feeds(data_dir: Path) -> list[str]:
    """The feeds with a loaded version; :class:`NoHotlistLoaded` when there is none.

    Reads ``state.json`` only, and creates nothing."""
    feeds = [
        feed for feed, info in read_state(data_dir)["feeds"].items() if info.get("content_file")
    ]
    if not feeds:
        raise NoHotlistLoaded(data_dir)
    return sorted(feeds)
