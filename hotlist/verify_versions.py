"""A version's files (``published/v<N>/manifest.json``, ``published/CURRENT.json``,
``store/state.json``) read as the JSON the system writes, when their raw bytes hold a
removed plate.

Each is written anew with every version, with the version's counts and times:
``"entries": 1679899``, ``"applied_at": "2026-12-04T14:47:08.123456+00:00"``. A removed
plate ``1679899``, or ``04T14``, stood in those bytes and failed the purges until the
next version. When a file is byte for byte what :func:`json.dumps` writes for what it
parses to (as the writers call it), a whole number at a place where the writer puts a
count or a version (:data:`NUMBERS`) is that count, and a real time where it puts a
time (:data:`TIMES`) that time; every other text (keys, names, paths, hashes, an
event's message, numbers anywhere else) is judged by the chance rule, as in raw bytes.
A file not exactly as written is searched as raw bytes, as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from hotlist.chance import ISO_TIME
from hotlist.scan import Hits, holding

#: ``*`` stands for any key (a feed's name).
Place = tuple[str, ...]
_MANIFEST_NUMBERS = frozenset(
    {("version",), ("entries",), ("feeds", "*", "version"), ("feeds", "*", "entries")}
)
_MANIFEST_TIMES = frozenset(
    {("created_at",), ("freshness", "*", "applied_at"), ("freshness", "*", "extract_time")}
)
#: Where each file's writer puts a count or a version.
NUMBERS: dict[str, frozenset[Place]] = {
    "manifest.json": _MANIFEST_NUMBERS,
    "CURRENT.json": _MANIFEST_NUMBERS,
    "state.json": frozenset(
        {
            ("hotlist_version",),
            ("feeds", "*", "version"),
            ("feeds", "*", "entries"),
            ("feeds", "*", "quarantined"),
        }
    ),
}
#: Where each file's writer puts a time.
TIMES: dict[str, frozenset[Place]] = {
    "manifest.json": _MANIFEST_TIMES,
    "CURRENT.json": _MANIFEST_TIMES,
    "state.json": frozenset(
        {
            ("written_at",),
            ("feeds", "*", "applied_at"),
            ("feeds", "*", "extract_time"),
            ("feeds", "*", "last_good_file", "at"),
            ("feeds", "*", "last_event", "at"),
        }
    ),
}
#: Whether each file's writer sorts its keys.
SORTED = {"manifest.json": False, "CURRENT.json": False, "state.json": True}
HIT = "holds content of a removed record"


def is_version_file(path: Path, data_dir: Path, published: Path) -> bool:
    """Whether ``path`` is named and placed as one of a version's files."""
    if path.name == "state.json":
        return path.parent == data_dir / "store"
    if path.name == "CURRENT.json":
        return path.parent == published
    return path.name == "manifest.json" and path.parent.parent == published


def scan_version_file(path: Path, markers: list[str]) -> Hits | None:
    """Where a version's file holds one of ``markers``; ``None`` when it is not as the
    system writes it (the caller then searches its bytes)."""
    if not path.is_file():  # a regular file only: a FIFO there would never end
        return None
    data = path.read_bytes()
    try:
        parsed = json.loads(data)
        written = json.dumps(parsed, indent=2, sort_keys=SORTED[path.name]).encode()
    except (ValueError, RecursionError, UnicodeEncodeError):
        return None
    if written != data or not isinstance(parsed, dict):
        return None
    places, texts = [], []
    for place, text in _texts(parsed, (), NUMBERS[path.name], TIMES[path.name]):
        places.append(".".join(place) or "(top)")
        texts.append(ISO_TIME.sub(" ", text))
    found = holding(markers, pl.Series(texts, dtype=pl.String)).to_list() if markers else []
    return [(place, f"{HIT} (a value of the file)") for place, hit in zip(places, found, strict=True) if hit]  # fmt: skip


def _matches(place: Place, patterns: frozenset[Place]) -> bool:
    return any(
        len(p) == len(place) and all(a in ("*", b) for a, b in zip(p, place, strict=True))
        for p in patterns
    )


def _texts(
    value: Any, place: Place, numbers: frozenset[Place], times: frozenset[Place]
) -> Iterator[tuple[Place, str]]:
    """Every text of ``value`` to be judged, with where it stands: keys, strings other
    than real times where the writer puts times, numbers other than whole ones where it
    puts counts."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*place, key), key
            yield from _texts(item, (*place, key), numbers, times)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _texts(item, (*place, str(i)), numbers, times)
    elif isinstance(value, str):
        if not (_matches(place, times) and ISO_TIME.fullmatch(value)):
            yield place, value
    elif (
        isinstance(value, bool)
        or value is None
        or (isinstance(value, int) and _matches(place, numbers))
    ):
        return
    else:
        yield place, json.dumps(value)
