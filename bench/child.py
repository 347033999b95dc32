"""One measured step, run in its own process so its peak RSS is its own.

``python -m bench.child STEP ARGS`` prints ``{"seconds": ..., "rss_mb": ...}``: the
step's time and this process's own peak RSS.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from uuid import UUID


def floor(ncic_file: Path, db_file: Path) -> None:
    """Read the extract and load its fields into a fresh DuckDB table: no validation at all
    (and no validation library imported: the floor's time is reading and loading)."""
    import duckdb

    from hotlist.layout import load_layout
    from hotlist.lines import fields, read_lines

    lines = read_lines(ncic_file).slice(1)
    frame = fields(lines, load_layout("ncic-fixed")).drop("_shape_ok")
    db_file.parent.mkdir(parents=True, exist_ok=True)
    db_file.unlink(missing_ok=True)
    con = duckdb.connect(str(db_file))
    con.register("frame", frame.to_arrow())
    con.execute("CREATE TABLE entries AS SELECT * FROM frame")
    con.execute("CHECKPOINT")
    con.close()
    if "pandera" in sys.modules:
        raise SystemExit("the floor imported pandera: it must not validate")


def ingest(config: Path, source: str) -> None:
    from hotlist.config import load_settings
    from hotlist.ingest import ingest_source

    ingest_source(load_settings(config), source)


def flow_run(config: Path, name: str) -> UUID:
    """One flow run, as a worker's flow-run process makes it (Prefect already imported)."""
    from flows.ingest_ncic import ingest_ncic
    from flows.ingest_svs import ingest_svs
    from flows.purge import purge

    if name == "purge":
        state = purge(config=str(config), return_state=True)
    else:
        flow = ingest_ncic if name == "ncic" else ingest_svs
        state = flow(config=str(config), return_state=True)
    if not state.is_completed() or state.state_details.flow_run_id is None:
        raise SystemExit(f"flow run {name} ended {state.name}")
    return state.state_details.flow_run_id


def recorded_run_time(flow_run_id: UUID) -> float:
    """The flow run's time in Running, as the Prefect API recorded it."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).total_run_time.total_seconds()


def main() -> None:
    step, *args = sys.argv[1:]
    started = time.perf_counter()
    report: dict[str, float] = {}
    if step == "flow":
        # A flow-run process starts with Prefect's engine loaded: that start is the same
        # for every flow run, whatever it does, and is reported on its own.
        import prefect.flow_engine  # noqa: F401

        report["prefect_import_s"] = time.perf_counter() - started
        started = time.perf_counter()
    ended: float | None = None
    if step == "floor":
        floor(Path(args[0]), Path(args[1]))
    elif step == "ingest":
        ingest(Path(args[0]), args[1])
    elif step == "flow":
        flow_run_id = flow_run(Path(args[0]), args[1])
        ended = time.perf_counter()  # the API read below is the benchmark's, not the run's
        report["recorded_s"] = recorded_run_time(flow_run_id)
    elif step == "purge":
        from hotlist.config import load_settings
        from hotlist.purge import purge

        purge(load_settings(Path(args[0])), None)
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = (ended or time.perf_counter()) - started
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(), **report}))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
