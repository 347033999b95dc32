"""``hotlist demo``: two days of sample files, both ingests through Prefect, a summary.

Day 2 removes, adds and changes entries, and carries one bad file (a CLEW table whose
trailer disagrees with its records): it is rejected while the others apply. The ingest
flows run against Prefect's ephemeral API (nothing to start), each followed by a purge
whose verification covers the demo's own PREFECT_HOME.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hotlist.samples import write_demo_days

FILES = ("svs.tbl", "sfr.tbl", "slr.tbl", "VEHEXTRT.txt")


def _stage(day: Path, drop: Path) -> None:
    drop.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(day / name, drop / name)


def run_demo(workdir: Path, console: Console) -> int:
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    home = workdir / "prefect-home"
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.pop("PREFECT_API_URL", None)
    days = write_demo_days(workdir / "upstream")
    drop = workdir / "drop"
    config = workdir / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n'
        f'[sources.svs]\nurl = "file://{drop}"\nguards = {{max_removal_share = 0.5}}\n'
        f'[sources.ncic]\nurl = "file://{drop}"\nguards = {{max_removal_share = 0.5}}\n'
    )
    console.print(f"[bold]hotlist demo[/bold] in {workdir}")
    console.print("starting Prefect's ephemeral API (first start takes a while)...")
    from flows.ingest_ncic import ingest_ncic
    from flows.ingest_svs import ingest_svs
    from hotlist.config import load_settings
    from hotlist.status import feed_statuses

    runs = Table(title="flow runs")
    for col in ("day", "flow", "state", "detail"):
        runs.add_column(col)
    for label, day in (("day 1", days.day1), ("day 2", days.day2)):
        _stage(day, drop)
        for flow in (ingest_svs, ingest_ncic):
            state = flow(config=str(config), return_state=True)
            detail = (
                str(state.message or "") if not state.is_completed() else _counts(state.result())
            )
            runs.add_row(label, flow.name, state.name, detail)
    console.print(runs)
    settings = load_settings(config)
    table = Table(title="feeds after day 2")
    for col in ("feed", "version", "entries", "quarantined", "last event", "freshness"):
        table.add_column(col)
    for s in feed_statuses(settings):
        table.add_row(
            s.feed, str(s.version), str(s.entries), str(s.quarantined), s.last_event or "-",
            "STALE" if s.stale else "fresh",
        )  # fmt: skip
    console.print(table)
    reports = sorted((settings.data_dir / "reports").glob("deletions-run*.html"))
    if reports:
        console.print(f"latest deletion report: {reports[-1]}")
    console.print(
        f"try: hotlist status -c {config}\n"
        f"     hotlist lookup {days.sample_plate} --user demo --org CA0000000 --purpose patrol -c {config}\n"
        f"     hotlist verify -c {config} --prefect-home {home}"
    )
    return 0


def _counts(result: object) -> str:
    if not isinstance(result, dict):
        return ""
    purge = result.get("purge") or {}
    text = f"{result.get('files_applied', 0)} applied, {result.get('files_unchanged', 0)} unchanged"
    if purge:
        text += (
            f"; purge run {purge['run_id']}: {purge['purged']} purged, verified={purge['verified']}"
        )
    return text
