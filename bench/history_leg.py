"""What the purge's verification costs as deletion reports accumulate.

    .venv/bin/python -m bench.history_leg [--lines 2000000] [--days 0,30,90,180]

Every purge writes a deletion report (JSON and HTML, about 11 MB for a day of the 2M-line
NCIC extract: 16.8k removals), reports are kept, and every later verification searches
every file, reports included. So the verification grows with the days the store has
run, not only with the store and the change.

Day 1 and day 2 of the cycle data set go in through ``hotlist ingest ncic`` (the day-2
purge writes a real report); then the report of that purge is copied as the reports of
N earlier days, and the verification a purge runs is timed (in this process, three
times each, median) with the plates day 2 removed as the records awaiting purge: they
are gone from every file, so what is measured is the search, and any finding is a chance
match (the reports name every removed NIC). The generated extract has no plates of digits
only, which real NCIC extracts carry (whole states issue them), so ``--digit-share`` of
the markers (default 3 %) are such plates, 5 to 7 digits, none of them on the list.
N = 0 is the baseline of the same run.

Then, without those reports, the access log: ``--access-records`` lookups (the records
``hotlist serve`` writes), one in 25 of a plate day 2 removed (queried lawfully before
its removal: the plate stays in the record's queried element, by law) and the rest of
plates still listed, and the same verification timed again. Results go to
``bench/out/history.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from bench.cycle_days import cycle_days
from bench.cycle_leg import HOTLIST, OUT, clean_env, hotlist_store, stage
from hotlist.audit.log import append_many
from hotlist.audit.record import AccessRecord
from hotlist.audit.segments import segment_paths
from hotlist.report_seals import seal
from hotlist.store import control_path
from hotlist.verify import verify

REPEATS = 3


def _plates(data_dir: Path) -> set[str]:
    current = json.loads((data_dir / "published" / "CURRENT.json").read_text())
    frame = pl.read_parquet(data_dir / "published" / current["dir"] / "hotlist.parquet")
    return set(frame["plate"].to_list())


def _set_history(reports: Path, source: list[Path], days: int) -> int:
    """Make the copies of ``source`` (one purge's report files) number ``days``, each
    sealed as the purge seals the report it writes (:mod:`hotlist.report_seals`: its
    files' SHA-256 and its texts, the source's); return the bytes of every file under
    ``reports``."""
    for old in reports.glob("deletions-run9*"):
        old.unlink()
    with duckdb.connect(str(control_path(reports.parent))) as con:
        _drop_copies(con, "report_seals")
        _drop_copies(con, "report_texts")
        [texts] = con.execute(
            "SELECT list(report_text) FROM report_texts WHERE report = ?", [source[0].stem]
        ).fetchone() or [[]]
        for day in range(days):
            copies = [reports / f"deletions-run9{day:05d}{path.suffix}" for path in source]
            for path, copy in zip(source, copies, strict=True):
                shutil.copyfile(path, copy)
            seal(con, copies, texts or [])
        con.execute("CHECKPOINT")
    return sum(p.stat().st_size for p in reports.iterdir())


def _unseal_copies(data_dir: Path) -> None:
    """The copies' seals removed: their reports are searched as raw bytes, as an older
    release's are."""
    with duckdb.connect(str(control_path(data_dir))) as con:
        _drop_copies(con, "report_seals")
        con.execute("CHECKPOINT")


def _drop_copies(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """The copies' rows out of ``table``, the table written anew (rows deleted in place
    stay in the file, which the verification reports)."""
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table}"  # noqa: S608 (a constant name)
        " WHERE report NOT LIKE 'deletions-run9%'"
    )


def _timed(data_dir: Path, home: Path, markers: list[str]) -> tuple[float, float, int, int]:
    """Median wall and CPU seconds of the verification, its bytes and findings."""
    seconds, cpu = [], []
    for _ in range(REPEATS):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = verify(data_dir, home, markers)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return statistics.median(seconds), statistics.median(cpu), result.bytes, len(result.findings)


def _access_log(data_dir: Path, removed: list[str], kept: list[str], count: int) -> dict[str, Any]:
    """Append ``count`` lookups to the access log of ``data_dir``: one in 25 of a removed
    plate, the others of listed plates."""
    draw = random.Random(1)  # noqa: S311 (a repeatable sample, not a secret)
    queried = 0
    for start in range(0, count, 50_000):
        batch = []
        for i in range(start, min(start + 50_000, count)):
            removed_one = i % 25 == 0
            queried += removed_one
            plate = draw.choice(removed if removed_one else kept)
            batch.append(
                AccessRecord(
                    user="officer j. smith", organization="CA0190000",
                    purpose="stolen vehicle investigation", data_element=f"plate {plate}",
                    outcome="granted: 1 hit" if removed_one else "granted: no hit",
                    channel="api", client="patrol-17",
                )
            )  # fmt: skip
        append_many(data_dir, batch, sync=False)
    size = sum(p.stat().st_size for p in segment_paths(data_dir))
    return {"records": count, "mb": round(size / 1e6, 1), "removed_queried": queried}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--days", default="0,30,90,180")
    parser.add_argument("--digit-share", type=float, default=0.03)
    parser.add_argument("--access-records", type=int, default=200_000)
    args = parser.parse_args()
    history = [int(d) for d in args.days.split(",")]
    days = cycle_days(OUT, args.lines, "shipped")
    root = OUT / "history-work"
    config = hotlist_store(root)
    env = clean_env(root / "prefect-home")
    data_dir = root / "data"
    run = [str(HOTLIST), "ingest", "ncic", "-c", str(config)]
    stage(days.day1, root / "drop")
    subprocess.run(run, env=env, check=True, capture_output=True, cwd=root)
    day1 = _plates(data_dir)
    stage(days.day2, root / "drop")
    subprocess.run(run, env=env, check=True, capture_output=True, cwd=root)
    removed = day1 - _plates(data_dir)
    draw = random.Random(0)  # noqa: S311 (a repeatable sample, not a secret)
    digits: set[str] = set()
    while len(digits) < args.digit_share * len(removed):
        plate = "".join(draw.choices("0123456789", k=draw.randint(5, 7)))
        if plate not in day1:
            digits.add(plate)
    markers = sorted(removed | digits)
    reports = data_dir / "reports"
    source = sorted(p for p in reports.iterdir() if p.stat().st_size > 1_000_000)
    rows: list[dict[str, Any]] = []
    unsealed: list[dict[str, Any]] = []
    for n in history:
        report_bytes = _set_history(reports, source, n)
        for sealed in (True, False):
            if not sealed:
                _unseal_copies(data_dir)
            wall, cpu, verified, findings = _timed(data_dir, root / "prefect-home", markers)
            row = {
                "days_of_reports": n,
                "sealed": sealed,
                "report_mb": round(report_bytes / 1e6, 1),
                "verified_mb": round(verified / 1e6, 1),
                "seconds": round(wall, 2),
                "cpu_seconds": round(cpu, 2),
                "findings": findings,
            }
            (rows if sealed else unsealed).append(row)
            print(json.dumps(row), flush=True)
    _set_history(reports, source, 0)
    access = _access_log(data_dir, sorted(removed), sorted(day1 - removed), args.access_records)
    seconds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = verify(data_dir, root / "prefect-home", markers)
        seconds.append(time.perf_counter() - started)
    access |= {"seconds": round(statistics.median(seconds), 2), "findings": len(result.findings)}
    print(json.dumps(access), flush=True)
    base = rows[0]["seconds"]
    for row in rows + unsealed:
        row["ratio_to_no_history"] = round(row["seconds"] / base, 2)
    longest = rows[-1]
    per_30 = (longest["seconds"] - base) / max(longest["days_of_reports"], 1) * 30
    per_30_raw = (unsealed[-1]["seconds"] - base) / max(longest["days_of_reports"], 1) * 30
    out = {
        "lines": days.lines_day2,
        "markers": len(markers),
        "digit_only_markers": sum(m.isdigit() for m in markers),
        "load_average": os.getloadavg()[0],
        "rows": rows,
        "unsealed_rows": unsealed,
        "seconds_per_30_days": round(per_30, 2),
        "seconds_per_30_days_unsealed": round(per_30_raw, 2),
        "access_log": access,
    }
    (OUT / "history.json").write_text(json.dumps(out, indent=2))
    print(
        f"{'days':>5} {'sealed':>6} {'reports MB':>11} {'verified MB':>12} {'s':>6}"
        f" {'CPU s':>6} {'x':>5}"
    )
    for row in [r for pair in zip(rows, unsealed, strict=True) for r in pair]:
        print(
            f"{row['days_of_reports']:>5} {'yes' if row['sealed'] else 'no':>6}"
            f" {row['report_mb']:>11} {row['verified_mb']:>12} {row['seconds']:>6}"
            f" {row['cpu_seconds']:>6} {row['ratio_to_no_history']:>5}"
        )
    print(
        f"verification grows {per_30:.2f} s per 30 days of sealed reports"
        f" ({per_30_raw:.2f} s searched as raw bytes); {len(markers)} markers"
    )
    print(
        f"with an access log of {access['records']:,} records ({access['mb']} MB,"
        f" {access['removed_queried']:,} queries of removed plates): {access['seconds']} s"
        f" ({access['seconds'] / base:.2f}x no history), {access['findings']} findings"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
