"""The day-2 cycle against dlt's merge alone, interleaved in the same run.

    .venv/bin/python -m bench.cycle_leg [--lines 2000000] [--repeats 2]
        [--variants shipped,unknown-models]

Needs the peer's environment (see :mod:`bench.dlt_peer`)::

    python3 -m venv .bench-dlt
    .bench-dlt/bin/pip install "dlt[duckdb,parquet]==1.31.*" polars

For each variant of the two days (:mod:`bench.cycle_days`: as generated, and with most
models unknown to the shipped table) and each repetition, on fresh stores:

* hotlist: ``hotlist ingest ncic -c CONFIG``, one CLI process with no Prefect API
  (fetch from a local drop directory, parse and validate, apply, then publish, purge,
  verify and report, as the CLI does after an ingest), day 1 then day 2;
* dlt: ``bench/dlt_peer.py`` with the peer's python, day 1 then day 2 (local
  ``filesystem`` source, polars parsing, DuckDB ``merge`` on NIC/plate/state with a
  hard-delete column for the records absent from the snapshot).

The order is hotlist day 1, dlt day 1, hotlist day 2, dlt day 2, with the two swapped
on every other repetition. Each process runs under :mod:`bench.rss_exec` (wall time, peak
RSS, CPU time, load average before and after). The machine is shared: the ratio
hotlist/dlt of each repetition, measured minutes apart, is the figure to rely on.

Writes ``bench/out/cycle.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.cycle_days import VARIANTS, CycleDays, cycle_days

ROOT = Path(__file__).parent.parent
OUT = Path(__file__).parent / "out"
PEER_PYTHON = ROOT / ".bench-dlt" / "bin" / "python"
HOTLIST = Path(sys.executable).with_name("hotlist")


def clean_env(prefect_home: Path) -> dict[str, str]:
    """No Prefect API: the CLI runs in-process; PREFECT_HOME is the run's own (empty)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLIST_", "PREFECT_"))}
    return {**env, "PREFECT_HOME": str(prefect_home), "RUNTIME__DLTHUB_TELEMETRY": "false"}


def measured(command: list[str], log: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``command`` under bench.rss_exec; its output goes to ``log``."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.rss_exec", str(log), "--", *command],
        capture_output=True, text=True, env=env, cwd=ROOT, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != 0:
        raise SystemExit(f"{command[:3]} failed ({result['status']}); see {log}")
    return result


def stage(day: Path, drop: Path) -> None:
    drop.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(day / "VEHEXTRT.txt", drop / "VEHEXTRT.txt")


def hotlist_store(root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    (root / "prefect-home").mkdir(parents=True)
    config = root / "hotlist.toml"
    config.write_text(f'data_dir = "data"\n[sources.ncic]\nurl = "file://{root / "drop"}"\n')
    return config


def hotlist_day(root: Path, day: Path, name: str) -> dict[str, Any]:
    stage(day, root / "drop")
    log = root / f"{name}.log"
    result = measured(
        [str(HOTLIST), "ingest", "ncic", "-c", str(root / "hotlist.toml")],
        log,
        clean_env(root / "prefect-home"),
    )
    result["said"] = [ln for ln in log.read_text().splitlines() if ln.strip()][-3:]
    return result


def dlt_day(root: Path, day: Path, name: str) -> dict[str, Any]:
    stage(day, root / "drop")
    log = root / f"{name}.log"
    command = [str(PEER_PYTHON), str(ROOT / "bench" / "dlt_peer.py"), str(root / "drop"),
               str(root / "work")]  # fmt: skip
    result = measured(command, log, clean_env(root / "prefect-home"))
    said = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
    result["peer"] = json.loads(said[-1])
    return result


def one_repeat(days: CycleDays, work: Path, index: int) -> dict[str, Any]:
    hot, peer = work / f"hotlist-{index}", work / f"dlt-{index}"
    hotlist_store(hot)
    shutil.rmtree(peer, ignore_errors=True)
    (peer / "prefect-home").mkdir(parents=True)
    runs: dict[str, Any] = {}
    order = ("hotlist", "dlt") if index % 2 == 0 else ("dlt", "hotlist")
    for day_name, day in (("day1", days.day1), ("day2", days.day2)):
        for system in order:
            if system == "hotlist":
                runs[f"hotlist_{day_name}"] = hotlist_day(hot, day, day_name)
            else:
                runs[f"dlt_{day_name}"] = dlt_day(peer, day, day_name)
            r = runs[f"{system}_{day_name}"]
            print(
                f"  {days.variant} #{index} {system:7} {day_name}: {r['wall_s']:7.2f} s"
                f" {r['rss_mb']:7.0f} MB  cpu {r['cpu_s']:6.1f} s"
                f"  load {r['load_before']:.1f}->{r['load_after']:.1f}",
                flush=True,
            )
    for day_name in ("day1", "day2"):
        runs[f"ratio_{day_name}"] = round(
            runs[f"hotlist_{day_name}"]["wall_s"] / runs[f"dlt_{day_name}"]["wall_s"], 3
        )
    shutil.rmtree(hot / "data", ignore_errors=True)
    shutil.rmtree(peer / "work", ignore_errors=True)
    return runs


def summary(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("hotlist_day1", "dlt_day1", "hotlist_day2", "dlt_day2"):
        out[key] = {
            "wall_s": [r[key]["wall_s"] for r in repeats],
            "rss_mb": [r[key]["rss_mb"] for r in repeats],
            "median_wall_s": statistics.median(r[key]["wall_s"] for r in repeats),
            "max_rss_mb": max(r[key]["rss_mb"] for r in repeats),
        }
    for day in ("day1", "day2"):
        ratios = [r[f"ratio_{day}"] for r in repeats]
        out[f"ratio_{day}"] = {"each": ratios, "median": statistics.median(ratios)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    if not PEER_PYTHON.exists():
        raise SystemExit(
            f"the peer's environment is missing ({PEER_PYTHON}): see bench/dlt_peer.py"
        )
    results: dict[str, Any] = {"lines": args.lines, "cpus": os.cpu_count()}
    for variant in args.variants.split(","):
        days = cycle_days(OUT, args.lines, variant)
        print(f"{variant}: day 1 {days.lines_day1:,} lines, day 2 {days.lines_day2:,}", flush=True)
        repeats = [one_repeat(days, OUT / "cycle-work", i) for i in range(args.repeats)]
        results[variant] = {"repeats": repeats, "summary": summary(repeats)}
    (OUT / "cycle.json").write_text(json.dumps(results, indent=2))
    print()
    for variant in args.variants.split(","):
        s = results[variant]["summary"]
        for day in ("day1", "day2"):
            h, d = s[f"hotlist_{day}"], s[f"dlt_{day}"]
            print(
                f"{variant:15} {day}: hotlist {h['median_wall_s']:.2f} s (max {h['max_rss_mb']:.0f} MB),"
                f" dlt {d['median_wall_s']:.2f} s (max {d['max_rss_mb']:.0f} MB);"
                f" hotlist/dlt per repetition {s[f'ratio_{day}']['each']},"
                f" median {s[f'ratio_{day}']['median']:.2f}"
            )


if __name__ == "__main__":
    main()
