"""Which shape the change watcher takes under Prefect, by what each costs when idle.

    .venv/bin/python -m bench.watch_shape [--checks 20]

Against a real Prefect API (``prefect_test_harness``) and a ``file://`` source holding the
demo's day 1:

* interval shape: one flow run per check (``check_once``: a stat of the files in a
  flow run of its own), ``checks`` times; plus the start of the process a worker would
  spawn for each (``python -c "import flows.watch"``: Prefect and hotlist imported);
* long-running shape: one ``watch-sources`` flow run doing ``checks`` checks one second
  apart, the marks unchanged after the first (whose ingest is counted apart).

Reports flow runs and task runs written to Prefect's database, and wall time per
check, for each; writes ``bench/out/watch_shape.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prefect import flow


@flow(name="check-once")
def check_once(config: str) -> bool:
    from hotlist.config import load_settings
    from hotlist.sources.probe import Prober

    settings = load_settings(Path(config))
    with Prober(settings.source("ncic")) as prober:
        return bool(prober.probe())


def _db_counts() -> dict[str, int]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        http = client._client  # the count routes have no client method
        return {
            name: int(http.post(f"/{name}/count", json={}).json())
            for name in ("flow_runs", "task_runs")
        }


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    from flows.watch import watch_sources
    from hotlist.samples import write_demo_days

    result: dict[str, Any] = {"checks": args.checks}
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=240):
        root = Path(tmp)
        days = write_demo_days(root / "upstream")
        drop = root / "drop"
        drop.mkdir()
        for name in ("svs.tbl", "sfr.tbl", "slr.tbl", "VEHEXTRT.txt"):
            shutil.copy(days.day1 / name, drop / name)
        config = root / "hotlist.toml"
        config.write_text(f'data_dir = "data"\n[sources.ncic]\nurl = "file://{drop}"\n')

        before = _db_counts()
        started = time.perf_counter()
        for _ in range(args.checks):
            check_once(str(config))
        wall = time.perf_counter() - started
        spawn = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import flows.watch"], check=True)
            spawn.append(time.perf_counter() - t)
        result["interval"] = {
            **_delta(before, _db_counts()),
            "wall_per_check_s": wall / args.checks,
            "process_start_s": min(spawn),
        }

        watch_sources(config=str(config), minutes=0.01, interval_seconds=1)  # first ingest
        before = _db_counts()
        started = time.perf_counter()
        out = watch_sources(
            config=str(config), minutes=(args.checks - 0.5) / 60, interval_seconds=1
        )
        wall = time.perf_counter() - started
        result["long_running"] = {
            **_delta(before, _db_counts()),
            "checks_done": out["ncic"]["checks"],
            "ingests": out["ncic"]["ingests"],
            "wall_s": wall,
        }
    print(json.dumps(result, indent=2))
    out_dir = Path(__file__).parent / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "watch_shape.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
