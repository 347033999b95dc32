"""The peer of the cycle benchmark: dlt's merge alone, on the same NCIC extract.

Runs in an environment of its own (dlt is no dependency of the project)::

    python3 -m venv .bench-dlt
    .bench-dlt/bin/pip install "dlt[duckdb,parquet]==1.31.*" polars
    .bench-dlt/bin/python bench/dlt_peer.py DROP_DIR WORK_DIR

(``.bench-dlt/`` is git-ignored; ``bench/cycle_leg.py`` runs this script with that
environment's python.) It imports nothing of the project: the field positions are read
from ``contracts/layouts/ncic-fixed.toml``.

One run is one snapshot: dlt's local ``filesystem`` source lists ``VEHEXTRT.txt`` in
DROP_DIR; a transformer reads it and cuts the fixed-width fields with polars (no
validation, no normalization of codes), and yields the snapshot as Arrow tables. The
records of the previous snapshot absent from this one are found by an anti-join against
the destination's table and yielded with ``deleted = true``, the column hinted
``hard_delete``. The pipeline then ``merge``s (dlt's default ``delete-insert`` strategy)
on ``(nic, plate, state)`` into DuckDB under WORK_DIR. The first run (day 1) loads into
an empty destination; the next (day 2) merges into it.

dlt's telemetry is off when ``RUNTIME__DLTHUB_TELEMETRY=false`` is set (the leg sets it).
Prints one JSON line: seconds, rows yielded, rows marked deleted, this process's peak RSS.
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt  # type: ignore[import-not-found]  # the peer's own environment
import duckdb
import polars as pl
import pyarrow as pa
from dlt.sources.filesystem import FileItemDict, filesystem  # type: ignore[import-not-found]

LAYOUT = Path(__file__).parent.parent / "contracts" / "layouts" / "ncic-fixed.toml"
NAMES = {"record_id": "nic"}  # NCIC's own name for the record id
KEY = ["nic", "plate", "state"]
TABLE = "ncic_entries"
DATASET = "ncic"


def fields() -> list[tuple[str, int, int]]:
    layout = tomllib.loads(LAYOUT.read_text())
    return [(NAMES.get(f["name"], f["name"]), f["start"], f["end"]) for f in layout["fields"]]


def parse(data: bytes) -> pl.DataFrame:
    """The record lines of the extract, cut into their fields (the header line skipped)."""
    lines = pl.read_csv(
        data,
        separator="\x1f",
        quote_char=None,
        has_header=False,
        new_columns=["text"],
        schema={"text": pl.String},
    )
    if lines.height and lines["text"][0].startswith("NCIC LPR EXTRACT"):
        lines = lines.slice(1)
    text = pl.col("text")
    return lines.select(
        text.str.slice(start, end - start).str.strip_chars().alias(name)
        for name, start, end in fields()
    ).with_columns(pl.lit(False).alias("deleted"))


def previous_keys(database: Path) -> pl.DataFrame | None:
    if not database.exists():
        return None
    con = duckdb.connect(str(database), read_only=True)
    try:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [DATASET, TABLE],
        ).fetchone()
        if not exists or not exists[0]:
            return None
        result = con.execute(f"SELECT {', '.join(KEY)} FROM {DATASET}.{TABLE}")  # noqa: S608 (constant names)
        return pl.from_arrow(result.to_arrow_table())  # type: ignore[return-value]
    finally:
        con.close()


def main() -> None:
    drop, work = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    database = work / "peer.duckdb"
    started = time.perf_counter()
    counts: dict[str, int] = {}
    before = previous_keys(database)

    @dlt.transformer(  # type: ignore[untyped-decorator]
        name=TABLE,
        primary_key=KEY,
        write_disposition="merge",
        columns={"deleted": {"hard_delete": True, "data_type": "bool"}},
    )
    def snapshot(items: Iterator[FileItemDict]) -> Iterator[pa.Table]:
        for item in items:
            with item.open() as fh:
                frame = parse(fh.read())
            counts["rows"] = frame.height
            yield frame.to_arrow()
            if before is not None:
                gone = before.join(frame.select(KEY), on=KEY, how="anti")
                counts["deleted"] = gone.height
                full = gone.with_columns(
                    [pl.lit(None, pl.String).alias(n) for n, _, _ in fields() if n not in KEY]
                ).with_columns(pl.lit(True).alias("deleted"))
                yield full.select(frame.columns).to_arrow()

    source = filesystem(bucket_url=drop.as_uri(), file_glob="VEHEXTRT.txt") | snapshot()
    pipeline = dlt.pipeline(
        pipeline_name="ncic_peer",
        pipelines_dir=str(work / "pipelines"),
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name=DATASET,
    )
    info: Any = pipeline.run(source)
    info.raise_on_failed_jobs()
    seconds = time.perf_counter() - started
    con = duckdb.connect(str(database), read_only=True)
    [[stored]] = con.execute(f"SELECT count(*) FROM {DATASET}.{TABLE}").fetchall()  # noqa: S608
    con.close()
    print(json.dumps({"seconds": round(seconds, 3), **counts, "stored": stored,
                      "rss_mb": peak_rss_mb()}))  # fmt: skip


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


if __name__ == "__main__":
    main()
