"""Declarative file layouts: offsets, separators, header and trailer, read from TOML.

The shipped layouts live in ``contracts/layouts``; an agency's own layout is a TOML file
of the same shape, named by path in the configuration (``layout = "/etc/hotlist/x.toml"``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

#: Field names a layout may use; each has a normalization rule and a contract check.
FIELD_NAMES = (
    "record_id",
    "ori",
    "record_date",
    "plate",
    "state",
    "county",
    "plate_year",
    "plate_type",
    "vehicle_year",
    "make",
    "model",
    "style",
    "colour",
)
REQUIRED_FIELDS = ("plate", "state")


class LayoutError(Exception):
    """A layout file is unusable; the message names the file and the key."""


@dataclass(frozen=True)
class Field:
    name: str
    start: int = 0
    end: int | None = None


@dataclass(frozen=True)
class Marker:
    """A header or trailer line: its pattern and whether a file must have it."""

    pattern: re.Pattern[str]
    required: bool
    time_format: str | None = None
    timezone: ZoneInfo | None = None


@dataclass(frozen=True)
class Layout:
    name: str
    format: Literal["fixed", "csv"]
    fields: tuple[Field, ...]
    identity: tuple[str, ...]
    header: Marker | None
    trailer: Marker | None
    separator: str = ","

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def has_record_id(self) -> bool:
        return "record_id" in self.field_names


def _marker(raw: Any, where: str) -> Marker | None:
    if raw is None:
        return None
    try:
        pattern = re.compile(raw["pattern"])
    except (KeyError, re.error) as exc:
        raise LayoutError(f"{where}: needs a valid 'pattern' ({exc})") from None
    tz = raw.get("timezone")
    return Marker(
        pattern=pattern,
        required=bool(raw.get("required", True)),
        time_format=raw.get("time_format"),
        timezone=ZoneInfo(tz) if tz else None,
    )


def parse_layout(raw: dict[str, Any], origin: str) -> Layout:
    """Build a :class:`Layout` from a decoded TOML document, checking every key."""
    try:
        name = str(raw["name"])
        fmt = raw["format"]
        fields_raw = raw["fields"]
        identity = tuple(raw["identity"])
    except KeyError as exc:
        raise LayoutError(f"layout {origin}: missing key {exc}") from None
    if fmt not in ("fixed", "csv"):
        raise LayoutError(f"layout {origin}: format must be 'fixed' or 'csv', not {fmt!r}")
    fields: list[Field] = []
    for i, f in enumerate(fields_raw):
        fname = f.get("name")
        if fname not in FIELD_NAMES:
            raise LayoutError(
                f"layout {origin}: fields[{i}].name {fname!r} is not one of {FIELD_NAMES}"
            )
        if fmt == "fixed":
            start, end = int(f.get("start", -1)), f.get("end")
            if start < 0 or (end is not None and int(end) <= start):
                raise LayoutError(f"layout {origin}: field {fname!r} needs 0 <= start < end")
            fields.append(Field(fname, start, None if end is None else int(end)))
        else:
            fields.append(Field(fname))
    names = {f.name for f in fields}
    missing = [n for n in REQUIRED_FIELDS if n not in names]
    if missing:
        raise LayoutError(f"layout {origin}: required fields missing: {missing}")
    bad_identity = [n for n in identity if n not in names and n != "list"]
    if bad_identity:
        raise LayoutError(f"layout {origin}: identity names unknown fields {bad_identity}")
    return Layout(
        name=name,
        format=fmt,
        fields=tuple(fields),
        identity=identity,
        header=_marker(raw.get("header"), f"layout {origin} [header]"),
        trailer=_marker(raw.get("trailer"), f"layout {origin} [trailer]"),
        separator=str(raw.get("separator", ",")),
    )


def load_layout(name_or_path: str) -> Layout:
    """Load a shipped layout by name (``ncic-fixed``) or an agency's own by file path."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        path = Path(name_or_path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LayoutError(f"layout file {path}: {exc.strerror}") from None
        origin = str(path)
    else:
        ref = resources.files("contracts") / "layouts" / f"{name_or_path}.toml"
        if not ref.is_file():
            shipped = sorted(
                p.name.removesuffix(".toml")
                for p in (resources.files("contracts") / "layouts").iterdir()
            )
            raise LayoutError(f"unknown layout {name_or_path!r}; shipped layouts: {shipped}")
        text = ref.read_text(encoding="utf-8")
        origin = name_or_path
    try:
        return parse_layout(tomllib.loads(text), origin)
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"layout {origin} is not valid TOML: {exc}") from None
