"""The benchmark dataset: two days of full snapshots at production size, written fast.

Day 1 is ``ncic_rows`` NCIC lines and the three SVS tables; day 2 is the same snapshot
taken later, with 1 % of each file's lines removed and 1 % new lines added. Everything
is generated column-wise (``hotlist.samples.generate``) and written with polars' CSV
writer, never a Python loop per row: 2,000,000 NCIC lines (~125 MB) take a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from hotlist.samples.formats import write_clew_frame, write_ncic_frame
from hotlist.samples.generate import clew_universe, hash_expr, ncic_universe, stream_key

#: Share of each file's lines removed, and share added, between day 1 and day 2.
CHANGE_SHARE = 0.01
BENCH_DAY1 = datetime(2026, 11, 22, 6, 0)
BENCH_DAY2 = BENCH_DAY1 + timedelta(hours=12)


@dataclass(frozen=True)
class BenchDataset:
    """Where the two days were written, and what they hold, per file name."""

    root: Path
    day1: Path
    day2: Path
    day1_time: datetime
    day2_time: datetime
    #: record lines on day 1, per file (``VEHEXTRT.txt``, ``svs.tbl``...)
    day1_rows: dict[str, int]
    #: record lines on day 2, per file
    day2_rows: dict[str, int]
    #: lines of day 1 that are gone on day 2, per file
    removed: dict[str, int]
    #: lines of day 2 that were not on day 1, per file
    added: dict[str, int]
    #: wall time of generation and writing
    seconds: float


def _share(rows: int) -> int:
    return round(rows * CHANGE_SHARE)


def _two_days(
    universe: pl.DataFrame, rows: int, seed: int, name: str
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Day 1 = the first ``rows`` rows; day 2 = day 1 minus 1 % of it, plus the rest."""
    day1 = universe.head(rows)
    removed = _share(rows)
    draw = hash_expr("id", stream_key(seed, f"bench/remove/{name}"))
    gone = draw.rank("ordinal") <= removed
    day2 = pl.concat([day1.filter(~gone), universe.slice(rows)])
    return day1, day2, removed


def write_bench_dataset(
    out_dir: Path,
    ncic_rows: int = 2_000_000,
    svs_rows: int = 150_000,
    sfr_rows: int = 5_000,
    slr_rows: int = 60_000,
    seed: int = 7,
) -> BenchDataset:
    """Write ``out_dir/day1`` and ``out_dir/day2`` (``VEHEXTRT.txt``, ``svs.tbl``,
    ``sfr.tbl``, ``slr.tbl``); day 2 has a later header, 1 % of lines removed, 1 % added.

    CLEW tables end their lines with CRLF, the NCIC extract with LF.
    """
    started = time.perf_counter()
    day1_dir, day2_dir = out_dir / "day1", out_dir / "day2"
    day1_dir.mkdir(parents=True, exist_ok=True)
    day2_dir.mkdir(parents=True, exist_ok=True)
    day1_rows: dict[str, int] = {}
    day2_rows: dict[str, int] = {}
    removed: dict[str, int] = {}
    added: dict[str, int] = {}

    universe = ncic_universe(seed, ncic_rows + _share(ncic_rows), BENCH_DAY1)
    one, two, removed["VEHEXTRT.txt"] = _two_days(universe, ncic_rows, seed, "ncic")
    write_ncic_frame(day1_dir / "VEHEXTRT.txt", one, BENCH_DAY1)
    write_ncic_frame(day2_dir / "VEHEXTRT.txt", two, BENCH_DAY2)
    day1_rows["VEHEXTRT.txt"], day2_rows["VEHEXTRT.txt"] = one.height, two.height
    added["VEHEXTRT.txt"] = _share(ncic_rows)

    tables = {"svs.tbl": ("stolen_vehicle", svs_rows), "sfr.tbl": ("felony_vehicle", sfr_rows)}
    tables["slr.tbl"] = ("stolen_plate", slr_rows)
    for name, (list_name, rows) in tables.items():
        universe = clew_universe(list_name, seed, rows + _share(rows), BENCH_DAY1)
        one, two, removed[name] = _two_days(universe, rows, seed, name)
        write_clew_frame(day1_dir / name, one, BENCH_DAY1, newline="\r\n")
        write_clew_frame(day2_dir / name, two, BENCH_DAY2, newline="\r\n")
        day1_rows[name], day2_rows[name], added[name] = one.height, two.height, _share(rows)

    return BenchDataset(
        root=out_dir,
        day1=day1_dir,
        day2=day2_dir,
        day1_time=BENCH_DAY1,
        day2_time=BENCH_DAY2,
        day1_rows=day1_rows,
        day2_rows=day2_rows,
        removed=removed,
        added=added,
        seconds=time.perf_counter() - started,
    )
