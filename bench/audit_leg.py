"""The access-log leg: what an append costs in PostgreSQL against the file log, same run.

    python -m bench.audit_leg [--appends 5000] [--database-url postgresql://...]

Without ``--database-url`` a throwaway PostgreSQL cluster is started on loopback (the
tests' one, with ``fsync`` turned back on so that a synchronous commit costs what it
costs). Measured, interleaved in rounds of 100 so both see the same machine:

* one request's append (``append``): the file writer (one ``write`` under ``flock``) and
  the PostgreSQL writer (one compare-and-set statement, ``synchronous_commit = off``),
  p50/p99 in microseconds, and what PostgreSQL adds at each;
* a batch's append of 1,000 records, and the ``sync`` after it (fsync of the segment;
  a synchronous commit flushing the WAL);
* two PostgreSQL writers appending at once (threads, a connection each), and by turns
  (replicas behind a round-robin proxy: each finds the head moved by the other): p50/p99
  and how many appends were chained again after the other writer moved the head (one
  more round trip each).

Prints one JSON object and writes it to ``bench/out/audit.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotlist.audit import AccessLogWriter, AccessRecord
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.pg.migrate import upgrade

OUT = Path(__file__).parent / "out"
RECORD = AccessRecord("officer1", "CA0190000", "patrol", "plate 7ABC123", "granted: 1 hits", "api")


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    n = len(ordered)
    return {
        "p50_us": round(ordered[n // 2] * 1e6, 1),
        "p99_us": round(ordered[min(n - 1, int(n * 0.99))] * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


def _timed(fn: Callable[[], object], into: list[float]) -> None:
    start = time.perf_counter()
    fn()
    into.append(time.perf_counter() - start)


def _database(url: str | None) -> tuple[str, Callable[[], None]]:
    if url is not None:
        return url, lambda: None
    import psycopg

    from hotlist.testing.postgres import start_cluster

    cluster = start_cluster()
    with psycopg.connect(cluster.url(), autocommit=True) as con:
        con.execute("ALTER SYSTEM SET fsync = on")
        con.execute("SELECT pg_reload_conf()")

    def stop() -> None:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)

    return cluster.create_database(), stop


def measure(url: str, appends: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="hotlist-audit-bench-"))
    try:
        upgrade(url)
        file_writer = AccessLogWriter(root / "files")
        pg_writer = PgAccessLogWriter(url, root / "pg", anchor_every=dt.timedelta(days=1))
        file_one: list[float] = []
        pg_one: list[float] = []
        for _ in range(50):  # warm: statements prepared, segment open
            file_writer.append(RECORD)
            pg_writer.append(RECORD)
        for _ in range(max(appends // 100, 1)):
            for _ in range(100):
                _timed(lambda: file_writer.append(RECORD), file_one)
            for _ in range(100):
                _timed(lambda: pg_writer.append(RECORD), pg_one)
        file_batch: list[float] = []
        pg_batch: list[float] = []
        file_sync: list[float] = []
        pg_sync: list[float] = []
        for _ in range(20):
            _timed(lambda: file_writer.append_many([RECORD] * 1000), file_batch)
            _timed(file_writer.sync, file_sync)
            _timed(lambda: pg_writer.append_many([RECORD] * 1000), pg_batch)
            _timed(pg_writer.sync, pg_sync)
        file_writer.close()
        pg_writer.close()
        contended = _two_writers(url, root / "pg", appends)
        alternating = _alternating(url, root / "pg", appends)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    one_file, one_pg = _quantiles(file_one), _quantiles(pg_one)
    return {
        "appends": len(pg_one),
        "append_file": one_file,
        "append_postgresql": one_pg,
        "postgresql_adds_us": {
            k: round(one_pg[k] - one_file[k], 1) for k in ("p50_us", "p99_us", "mean_us")
        },
        "append_ratio_pg_to_file": {
            k: round(one_pg[k] / one_file[k], 2) for k in ("p50_us", "p99_us", "mean_us")
        },
        "batch_1000_file": _quantiles(file_batch),
        "batch_1000_postgresql": _quantiles(pg_batch),
        "sync_file": _quantiles(file_sync),
        "sync_postgresql": _quantiles(pg_sync),
        "two_postgresql_writers": contended,
        "two_postgresql_writers_taking_turns": alternating,
    }


def _two_writers(url: str, data_dir: Path, appends: int) -> dict[str, Any]:
    writers = [PgAccessLogWriter(url, data_dir) for _ in range(2)]
    samples: list[list[float]] = [[], []]
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        for _ in range(appends):
            _timed(lambda: writers[i].append(RECORD), samples[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    retries = sum(w.retries for w in writers)
    for writer in writers:
        writer.close()
    return {
        **_quantiles(samples[0] + samples[1]),
        "appends": 2 * appends,
        "chained_again": retries,
    }


def _alternating(url: str, data_dir: Path, appends: int) -> dict[str, Any]:
    """Two writers appending by turns (replicas behind a round-robin proxy): each finds
    the head moved by the other since its last append."""
    writers = [PgAccessLogWriter(url, data_dir) for _ in range(2)]
    samples: list[float] = []
    for i in range(appends):
        _timed(functools.partial(writers[i % 2].append, RECORD), samples)
    retries = sum(w.retries for w in writers)
    for writer in writers:
        writer.close()
    return {**_quantiles(samples), "appends": appends, "chained_again": retries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=5000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url, stop = _database(args.database_url)
    try:
        if args.database_url is not None:  # a database of its own, dropped afterwards
            url = _scratch(url)
        result = measure(url, args.appends)
    finally:
        stop()
    OUT.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2)
    (OUT / "audit.json").write_text(text + "\n")
    print(text)


def _scratch(url: str) -> str:
    """A fresh database beside the one named (the bench never writes into a real log)."""
    import psycopg

    name = f"hotlist_audit_bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"'.encode())
    return url.rsplit("/", 1)[0] + "/" + name


if __name__ == "__main__":
    main()
