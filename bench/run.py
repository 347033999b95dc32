"""The benchmark: ingest against the floor, measured in one run on this machine.

    make bench            # or: .venv/bin/python -m bench.run [--ncic-rows N]

Generates a 2,000,000-row NCIC extract (~125 MB) and the three SVS tables (day 1 and
day 2: 1 % removed, 1 % added), then measures, each step in its own process:

* floor: read the extract and load its fields into a fresh DuckDB table, no validation;
* day-1 and day-2 ingest end to end (fetch, parse, validate, diff, write, commit), run
  in-process (untracked) and as Prefect flow runs against an already running API;
* the cold-start cost of a flow run without an API (ephemeral Prefect server);
* purge: from the day-2 tombstones (1 % of the store) to a verified purge;
* SFTP: the day-1 extract fetched from a local sshd by ``fetch_sftp`` and by OpenSSH's
  ``sftp`` client in the same run;
* the patrol API: full and 1 % delta sizes, full download time, and a bounded load test
  (``bench/load.py``: 50 consumers pulling deltas beside 500 lookups/s).

Wall time and peak RSS of each step, and each as a ratio to the floor, go to stdout and
to ``bench/out/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hotlist.samples import write_bench_dataset

OUT = Path(__file__).parent / "out"
FEED_FILES = {"svs": ["svs.tbl", "sfr.tbl", "slr.tbl"], "ncic": ["VEHEXTRT.txt"]}


def measure(args: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``python -m bench.child ARGS``; return its step seconds, wall seconds, peak RSS MB."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.child", *args],
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).parent.parent,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"bench step {args} failed with status {status}")
    step = json.loads(output.decode().strip().splitlines()[-1])["seconds"]
    return {"seconds": step, "wall": wall, "rss_mb": usage.ru_maxrss / 1024}


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def write_config(root: Path, drop: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.svs]\nurl = "file://{drop}"\n'
        f'[sources.ncic]\nurl = "file://{drop}"\n'
    )
    return config


def stage(day: Path, drop: Path, source: str) -> None:
    drop.mkdir(parents=True, exist_ok=True)
    for name in FEED_FILES[source]:
        shutil.copyfile(day / name, drop / name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def prefect_server(home: Path) -> Iterator[dict[str, str]]:
    """A real Prefect API, as in production: started once, before the measured runs."""
    port = free_port()
    env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):  # noqa: S310 (loopback http)
                    break
            except OSError:
                time.sleep(0.5)
        yield {**env, "PREFECT_API_URL": url}
    finally:
        server.terminate()
        server.wait(timeout=30)


def ingest_days(
    dataset: Any, root: Path, source: str, mode: str, env: dict[str, str], repeats: int
) -> dict[str, dict[str, float]]:
    """Day 1 into an empty store, then day 2 on top of it; ``repeats`` fresh stores."""
    day1_runs, day2_runs = [], []
    for i in range(repeats):
        run_root = root / f"{source}-{mode}-{i}"
        shutil.rmtree(run_root, ignore_errors=True)
        drop = run_root / "drop"
        config = write_config(run_root, drop)
        stage(dataset.day1, drop, source)
        day1_runs.append(measure(["ingest", str(config), source, mode], env))
        stage(dataset.day2, drop, source)
        day2_runs.append(measure(["ingest", str(config), source, mode], env))
        shutil.rmtree(run_root / "data", ignore_errors=True)
    return {"day1": median(day1_runs), "day2": median(day2_runs)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ncic-rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load-seconds", type=float, default=20.0)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    generated = time.perf_counter()
    dataset = write_bench_dataset(OUT / f"dataset-{args.ncic_rows}", ncic_rows=args.ncic_rows)
    print(f"dataset ready in {time.perf_counter() - generated:.1f} s under {OUT}")
    ncic_mb = (dataset.day1 / "VEHEXTRT.txt").stat().st_size / 1e6
    work = OUT / "work"
    results: dict[str, Any] = {"ncic_rows": args.ncic_rows, "ncic_mb": round(ncic_mb, 1)}
    results["floor"] = median(
        [
            measure(["floor", str(dataset.day1 / "VEHEXTRT.txt"), str(work / "floor.duckdb")])
            for _ in range(args.repeats)
        ]
    )
    results["ncic_untracked"] = ingest_days(dataset, work, "ncic", "untracked", {}, args.repeats)
    results["svs_untracked"] = ingest_days(dataset, work, "svs", "untracked", {}, args.repeats)
    with prefect_server(work / "prefect-home") as env:
        results["ncic_tracked"] = ingest_days(dataset, work, "ncic", "tracked", env, args.repeats)
    cold = ingest_days(
        dataset, work, "ncic", "tracked", {"PREFECT_HOME": str(work / "cold-home")}, 1
    )
    results["cold_start_overhead_s"] = round(
        cold["day1"]["wall"] - results["ncic_tracked"]["day1"]["wall"], 1
    )
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    report(results)


def report(results: dict[str, Any]) -> None:
    floor = results["floor"]
    print(
        f"\nNCIC extract: {results['ncic_rows']:,} rows, {results['ncic_mb']} MB; floor = read + load, no validation"
    )
    print(
        f"{'step':32} {'step s':>8} {'x floor':>8} {'wall s':>8} {'peak RSS MB':>12} {'x floor':>8}"
    )
    rows = [("floor (read + load)", floor)]
    for key in ("ncic_untracked", "ncic_tracked", "svs_untracked"):
        for day in ("day1", "day2"):
            rows.append((f"{key.replace('_', ' ')} {day}", results[key][day]))
    for name, r in rows:
        print(
            f"{name:32} {r['seconds']:8.2f} {r['seconds'] / floor['seconds']:8.2f} {r['wall']:8.2f}"
            f" {r['rss_mb']:12.0f} {r['rss_mb'] / floor['rss_mb']:8.2f}"
        )
    print(
        f"cold-start overhead of a flow run without a running Prefect API: {results['cold_start_overhead_s']} s"
    )


if __name__ == "__main__":
    main()
