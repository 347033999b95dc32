"""Byte-exact writers of the upstream files at the reference layouts (docs/formats.md 1 and 2).

* CLEW SVS table (``svs.tbl``, ``sfr.tbl``, ``slr.tbl``): header ``DATE`` +
  ``MM/DD/YYYY HH:MM``, fixed-width records (plate 0-8, state 8-10, county 10-12,
  loss date ``CCYYMMDD`` 12-20), trailer ``TOTAL RECORD`` + space + 7-digit count.
* NCIC LPR extract (``VEHEXTRT.txt``): header ``NCIC LPR EXTRACT CCYYMMDDHHMM``, then
  fixed-width records (colour last, 3 or 7 characters) or the CSV variant
  ``NIC,ORI,CCYYMMDD,LIC,LIS,LIY,LIT,VYR,VMA,VMO,VST,VCO``.

Records are formatted column-wise with polars, so the same code writes a demo file of a
few hundred lines and a benchmark extract of millions. Every file ends with a line
terminator (a last line without one is an incomplete file). The writers check widths
and characters, never content: a malformed date or code written as a string is written
as is, but a value that would shift the following fields is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import polars as pl

Newline = Literal["\n", "\r\n"]
NcicLayout = Literal["ncic-fixed", "ncic-csv"]

#: CLEW SVS record: (field, width), in line order (docs/formats.md section 1).
CLEW_FIELDS: tuple[tuple[str, int], ...] = (
    ("plate", 8),
    ("state", 2),
    ("county", 2),
    ("loss_date", 8),
)
#: NCIC extract record: (field, width), in line order; the colour runs to the end of the
#: line (3 or 7 characters) and is never padded (docs/formats.md section 2).
NCIC_FIELDS: tuple[tuple[str, int], ...] = (
    ("nic", 10),
    ("ori", 9),
    ("record_date", 8),
    ("plate", 10),
    ("state", 2),
    ("plate_year", 4),
    ("plate_type", 2),
    ("vehicle_year", 4),
    ("make", 4),
    ("model", 3),
    ("style", 2),
    ("colour", 7),
)
CLEW_COLUMNS = tuple(name for name, _ in CLEW_FIELDS)
NCIC_COLUMNS = tuple(name for name, _ in NCIC_FIELDS)
MAX_TRAILER_COUNT = 9_999_999


@dataclass(frozen=True, slots=True)
class ClewRecord:
    """One entry of a CLEW SVS table: the plate as written, state, CA county, date of loss."""

    plate: str
    state: str
    county: str
    loss_date: date


@dataclass(frozen=True, slots=True)
class NcicRecord:
    """One line of the NCIC extract. A NIC with supplemental plates stands on several lines."""

    nic: str
    ori: str
    record_date: date
    plate: str
    state: str
    plate_year: int | None
    plate_type: str
    vehicle_year: int | None
    make: str
    model: str
    style: str
    colour: str

    @property
    def hit_type(self) -> str:
        """The first letter of the NIC (``V`` stolen vehicle, ``N`` immigration violator...)."""
        return self.nic[:1]


def clew_header(header_time: datetime) -> str:
    """``DATE07/02/2018 09:00``: Pacific local time, as written by CA DOJ."""
    return "DATE" + header_time.strftime("%m/%d/%Y %H:%M")


def clew_trailer(count: int) -> str:
    """``TOTAL RECORD 0000072``."""
    if not 0 <= count <= MAX_TRAILER_COUNT:
        raise ValueError(f"a CLEW trailer holds 0..{MAX_TRAILER_COUNT} records, not {count}")
    return f"TOTAL RECORD {count:07d}"


def ncic_header(header_time: datetime) -> str:
    """``NCIC LPR EXTRACT 202611220800``: the shape the readers take the extract time from."""
    return "NCIC LPR EXTRACT " + header_time.strftime("%Y%m%d%H%M")


def _year(value: int | None) -> str:
    return "" if value is None else f"{value:04d}"


def clew_frame(records: Iterable[ClewRecord | tuple[str, str, str, date]]) -> pl.DataFrame:
    """Records as a frame of text fields (``CLEW_COLUMNS``), ready for ``clew_lines``."""
    rows = [
        (r.plate, r.state, r.county, r.loss_date.strftime("%Y%m%d"))
        for r in (x if isinstance(x, ClewRecord) else ClewRecord(*x) for x in records)
    ]
    return pl.DataFrame(rows, schema=dict.fromkeys(CLEW_COLUMNS, pl.String), orient="row")


def ncic_frame(records: Iterable[NcicRecord]) -> pl.DataFrame:
    """Records as a frame of text fields (``NCIC_COLUMNS``), ready for ``ncic_lines``."""
    rows = [
        (
            r.nic,
            r.ori,
            r.record_date.strftime("%Y%m%d"),
            r.plate,
            r.state,
            _year(r.plate_year),
            r.plate_type,
            _year(r.vehicle_year),
            r.make,
            r.model,
            r.style,
            r.colour,
        )
        for r in records
    ]
    return pl.DataFrame(rows, schema=dict.fromkeys(NCIC_COLUMNS, pl.String), orient="row")


def _check(frame: pl.DataFrame, fields: Sequence[tuple[str, int]], separator: str) -> None:
    """Refuse nulls and over-wide values (they would shift the following fields), and a
    value holding the CSV ``separator`` or a double quote."""
    checks = []
    for name, width in fields:
        col = pl.col(name)
        checks += [
            col.is_null().any().alias(f"{name} is missing"),
            (col.str.len_bytes() > width).any().alias(f"{name} is wider than {width}"),
        ]
        if separator:
            for char in (separator, '"'):
                has = col.str.contains(char, literal=True).any()
                checks.append(has.alias(f"{name} holds {char!r}"))
    _refuse(frame.select(checks).row(0, named=True))


def _refuse(faults: dict[str, bool]) -> None:
    bad = [fault for fault, hit in faults.items() if hit]
    if bad:
        raise ValueError("cannot write these records: " + "; ".join(bad))


def _printable(lines: pl.Series) -> pl.Series:
    """Lines must be printable ASCII: a CR, LF or other byte would break the file's lines."""
    outside = lines.str.contains(r"[^\x20-\x7E]").any()
    _refuse({"a value holds a character outside printable ASCII": bool(outside)})
    return lines


def clew_lines(frame: pl.DataFrame) -> pl.Series:
    """The fixed-width record lines of a CLEW frame (no line terminators)."""
    _check(frame, CLEW_FIELDS, "")
    line = pl.concat_str([pl.col(name).str.pad_end(width) for name, width in CLEW_FIELDS])
    return _printable(frame.select(line.alias("line")).to_series())


def ncic_lines(frame: pl.DataFrame, layout: NcicLayout = "ncic-fixed") -> pl.Series:
    """The record lines of an NCIC frame, fixed-width or CSV (no line terminators)."""
    if layout == "ncic-csv":
        _check(frame, NCIC_FIELDS, ",")
        line = pl.concat_str([pl.col(name) for name in NCIC_COLUMNS], separator=",")
    else:
        _check(frame, NCIC_FIELDS, "")
        *padded, (last, _) = NCIC_FIELDS
        line = pl.concat_str(
            [pl.col(name).str.pad_end(width) for name, width in padded] + [pl.col(last)]
        )
    return _printable(frame.select(line.alias("line")).to_series())


def write_lines(
    path: Path, header: str, lines: pl.Series, trailer: str | None, newline: Newline
) -> None:
    """Header, record lines, optional trailer; every line terminated by ``newline``."""
    with path.open("wb") as fh:
        fh.write((header + newline).encode("ascii"))
        if len(lines):
            lines.to_frame("line").write_csv(
                fh, include_header=False, quote_style="never", line_terminator=newline
            )
        if trailer is not None:
            fh.write((trailer + newline).encode("ascii"))


def write_clew_frame(
    path: Path,
    frame: pl.DataFrame,
    header_time: datetime,
    *,
    newline: Newline = "\n",
    trailer_count: int | None = None,
) -> None:
    """Write a CLEW table from a frame of text fields; see ``write_clew``."""
    lines = clew_lines(frame)
    count = len(lines) if trailer_count is None else trailer_count
    write_lines(path, clew_header(header_time), lines, clew_trailer(count), newline)


def write_ncic_frame(
    path: Path,
    frame: pl.DataFrame,
    header_time: datetime,
    *,
    layout: NcicLayout = "ncic-fixed",
    newline: Newline = "\n",
) -> None:
    """Write an NCIC extract from a frame of text fields; see ``write_ncic``."""
    write_lines(path, ncic_header(header_time), ncic_lines(frame, layout), None, newline)


def write_clew(
    path: Path,
    records: Iterable[ClewRecord | tuple[str, str, str, date]],
    header_time: datetime,
    *,
    newline: Newline = "\n",
    trailer_count: int | None = None,
) -> None:
    """Write a CLEW SVS table: header, one fixed-width line per record, trailer.

    ``records`` are ``ClewRecord`` or ``(plate, state, county, loss_date)`` tuples.
    ``trailer_count`` overrides the trailer's count (to write an incomplete file on
    purpose); by default it is the number of record lines.
    """
    write_clew_frame(
        path, clew_frame(records), header_time, newline=newline, trailer_count=trailer_count
    )


def write_ncic(
    path: Path,
    records: Iterable[NcicRecord],
    header_time: datetime,
    *,
    layout: NcicLayout = "ncic-fixed",
    newline: Newline = "\n",
) -> None:
    """Write an NCIC LPR extract (``VEHEXTRT.txt``): header line, then one line per record."""
    write_ncic_frame(path, ncic_frame(records), header_time, layout=layout, newline=newline)
