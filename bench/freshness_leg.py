"""The freshness leg: from day 2's files dropped to their removals gone from every
following patrol copy.

    .venv/bin/python -m bench.freshness_leg [--runs 5] [--followers 1] [--ncic-rows 0]

Each run starts from nothing: ``hotlist serve`` and ``hotlist watch --interval 1`` as
processes of their own, ``followers`` consumers following with the reference client
(``hotlist pull --follow``, a process each, as a patrol integration runs it; with
``--followers-as threads``, :class:`hotlist.serve.client.Follower` threads of this
process, whose applies take turns on its one GIL), day 1 dropped and followed, then day
2 dropped. A follower's latency is the time from the drop to its
copy holding the last version day 2 published (both sources' removals applied; that
the removed records are then gone from the copy is what ``tests/test_freshness_e2e.py``
checks). ``--ncic-rows 0`` uses the
demo's two days (~300 NCIC lines); a number uses the benchmark's generated extract of
that many lines (1 % removed on day 2).

Prints p50, p95 and max over every follower of every run, and writes them to
``bench/out/freshness.json`` (the server's and watcher's logs of each run in ``bench/out/freshness-logs/``). Beside them, where the time went: when the final version
was first named in ``CURRENT.json`` (published), when each follower's answer arrived, and
how long each follower took to apply it (read its copy, merge the delta, write, fsync,
scrub the old copy). The followers share this machine's cores with the server and the
ingest, so with many of them the applies queue behind one another; on patrol cars each
applies on its own hardware.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hotlist.serve import consumers as reg
from hotlist.serve.client import COPY_FORMATS, Follower, PullResult
from hotlist.store.state import read_state

OUT = Path(__file__).parent / "out"
FILES = ("svs.tbl", "sfr.tbl", "slr.tbl", "VEHEXTRT.txt")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stage(day: Path, drop: Path) -> None:
    for name in FILES:
        if (day / name).exists():
            shutil.copyfile(day / name, drop / name)


def _days(root: Path, ncic_rows: int) -> tuple[Path, Path, frozenset[str]]:
    """Day 1, day 2, and the day-2 files expected to be refused."""
    if ncic_rows:
        from hotlist.samples import write_bench_dataset

        kept = OUT / f"dataset-{ncic_rows}"  # generated once, kept for the next runs
        if all((kept / day / name).exists() for day in ("day1", "day2") for name in FILES):
            return kept / "day1", kept / "day2", frozenset()
        found = write_bench_dataset(kept, ncic_rows=ncic_rows)
        return found.day1, found.day2, frozenset()
    from hotlist.samples import write_demo_days

    days = write_demo_days(root / "upstream")
    return days.day1, days.day2, frozenset({days.bad_file.name})


FEED_FILES = {"svs": "svs.tbl", "sfr": "sfr.tbl", "slr": "slr.tbl", "ncic": "VEHEXTRT.txt"}


def _hashes(day: Path, refused: frozenset[str]) -> dict[str, str]:
    """Each feed's file of ``day`` (but the ones expected to be refused): its sha256."""
    return {
        feed: hashlib.sha256((day / name).read_bytes()).hexdigest()
        for feed, name in FEED_FILES.items()
        if name not in refused
    }


def _applied(data_dir: Path, hashes: dict[str, str]) -> bool:
    """Every file of the day is the one applied last."""
    feeds = read_state(data_dir).get("feeds", {})
    return all(
        ((feeds.get(feed) or {}).get("last_good_file") or {}).get("sha256") == sha
        for feed, sha in hashes.items()
    )


def _settled(
    data_dir: Path, copies: dict[str, list[tuple[float, int]]], hashes: dict[str, str]
) -> int:
    """The published version once the day's files (``hashes``) are applied and every copy
    holds that version. The files are hashed before the drop, once: hashing the 2M-line
    extract at every look (20 a second) took most of a core from the ingest, the server
    and the followers."""
    while True:
        if _applied(data_dir, hashes):
            version = int(read_state(data_dir).get("hotlist_version", 0))
            if all(p and p[-1][1] == version for p in copies.values()):
                return version
        time.sleep(0.05)


class Published:
    """When each version first appeared in ``CURRENT.json`` (polled every 20 ms)."""

    def __init__(self, root: Path) -> None:
        self.root, self.seen = root, dict[int, float]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            try:
                version = int(json.loads((self.root / "CURRENT.json").read_text())["version"])
            except (OSError, ValueError, KeyError):
                continue
            self.seen.setdefault(version, time.monotonic())

    def first(self, version: int) -> float:
        return min(t for v, t in self.seen.items() if v >= version)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Run:
    """One run's times from the drop, in seconds: the final version published, and per
    follower its answer's arrival, its copy in place (and acknowledged), and its own apply
    time (the answer's arrival to the copy in place, fsynced)."""

    published: float
    arrived: list[float]
    applied: list[float]
    apply_s: list[float]
    cpu_s: dict[str, float]  # CPU seconds from the drop to the last copy: who used the cores


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(
    procs: list[subprocess.Popen[bytes]], children: list[subprocess.Popen[bytes]]
) -> dict[str, float]:
    """CPU seconds so far: the followers (their processes, else this one's threads), the
    server, the watcher."""
    followers = sum(_cpu_s(c.pid) for c in children) if children else _cpu_s(os.getpid())
    return {
        "followers": followers,
        "serve": _cpu_s(procs[0].pid),
        "watch": _cpu_s(procs[1].pid),
    }


#: What ``hotlist pull --follow`` prints after each version it applied and acknowledged.
REPORT = re.compile(r"now at version (\d+) .*applied in ([\d.]+) s, acknowledged in ([\d.]+) s")


def _follow_process(
    root: Path,
    i: int,
    key: str,
    server: str,
    copy_format: str,
    record: Callable[[PullResult], None],
) -> subprocess.Popen[bytes]:
    """``hotlist pull --follow`` as a process of its own, as a patrol integration runs it;
    each version it reports is recorded when its line arrives (printed after the ack)."""
    key_file = root / f"key-{i}"
    key_file.write_text(key)
    key_file.chmod(0o600)
    child = subprocess.Popen(
        [
            sys.executable, "-m", "hotlist", "pull", "--server", server,
            "--key-file", str(key_file), "--user", f"car{i}", "--purpose", "patrol",
            "--out", str(root / f"copy-{i}"), "--follow", "--copy-format", copy_format,
        ],
        stdout=subprocess.PIPE, stderr=open(root / f"follower-{i}.log", "wb"),  # noqa: SIM115
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip

    def read(stdout: IO[bytes]) -> None:
        for line in stdout:
            found = REPORT.search(line.decode(errors="replace"))
            if found:
                version, applied, acked = found.groups()
                record(PullResult(int(version), False, 0, 0, 0, float(applied), float(acked)))

    assert child.stdout is not None
    threading.Thread(target=read, args=(child.stdout,), daemon=True).start()
    return child


def one_run(
    root: Path,
    days: tuple[Path, Path, frozenset[str]],
    followers: int,
    copy_format: str,
    as_processes: bool = True,
) -> Run:
    drop, config = root / "drop", root / "hotlist.toml"
    drop.mkdir(parents=True)
    source = f'url = "file://{drop}"\nguards = {{max_removal_share = 0.5}}\n'
    config.write_text(f'data_dir = "data"\n[sources.svs]\n{source}[sources.ncic]\n{source}')
    data_dir = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLIST_", "PREFECT_API"))}
    env["PREFECT_HOME"] = str(root / "prefect-home")
    keys = [
        reg.add(data_dir, f"car-{i}", "CA0190000", "Bench PD", reg.AgencyKind.CA_LOCAL)
        for i in range(followers)
    ]
    port = _free_port()
    hotlist = [sys.executable, "-m", "hotlist"]
    logs = {n: open(root / f"{n}.log", "wb") for n in ("serve", "watch")}  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [*hotlist, "serve", "-c", str(config), "--port", str(port)],
            stdout=logs["serve"], stderr=subprocess.STDOUT, env=env,
        ),
        subprocess.Popen(
            [*hotlist, "watch", "-c", str(config), "--interval", "1"],
            stdout=logs["watch"], stderr=subprocess.STDOUT, env=env,
        ),
    ]  # fmt: skip
    pulls: dict[str, list[tuple[float, int]]] = {f"car-{i}": [] for i in range(followers)}
    applies: dict[str, list[tuple[int, float, float]]] = {name: [] for name in pulls}
    running: list[tuple[Follower, threading.Thread]] = []
    children: list[subprocess.Popen[bytes]] = []
    published = Published(data_dir / "published")
    server = f"http://127.0.0.1:{port}"
    try:
        _stage(days[0], drop)
        for i, key in enumerate(keys):
            seen, took = pulls[f"car-{i}"], applies[f"car-{i}"]

            def record(
                result: PullResult,
                seen: list[tuple[float, int]] = seen,
                took: list[tuple[int, float, float]] = took,
            ) -> None:
                seen.append((time.monotonic(), result.version))
                took.append((result.version, result.applied_s, result.acked_s))

            if as_processes:
                children.append(_follow_process(root, i, key, server, copy_format, record))
                continue
            follower = Follower(
                server, key, f"car{i}", "patrol", root / f"copy-{i}",
                on_pull=record, copy_format=copy_format,
            )  # fmt: skip
            thread = threading.Thread(target=follower.run, daemon=True)
            thread.start()
            running.append((follower, thread))
        _settled(data_dir, pulls, _hashes(days[0], frozenset()))
        day2 = _hashes(days[1], days[2])
        dropped, cpu_at_drop = time.monotonic(), _cpu(procs, children)
        _stage(days[1], drop)
        final = _settled(data_dir, pulls, day2)
        cpu_used = {k: v - cpu_at_drop[k] for k, v in _cpu(procs, children).items()}
        applied = [min(t for t, v in seen if v >= final) - dropped for seen in pulls.values()]
        own = [next((a, k) for v, a, k in took if v >= final) for took in applies.values()]
        apply_s = [a for a, _ in own]
        return Run(
            published=published.first(final) - dropped,
            arrived=[done - a - k for done, (a, k) in zip(applied, own, strict=True)],
            applied=applied,
            apply_s=apply_s,
            cpu_s=cpu_used,
        )
    finally:
        published.stop()
        for follower, _ in running:
            follower.stop()
        for child in children:
            child.send_signal(signal.SIGTERM)
        for _, thread in running:
            thread.join(timeout=60)
        for child in children:
            child.wait(timeout=120)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        for log in logs.values():
            log.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--followers", type=int, default=1)
    parser.add_argument("--ncic-rows", type=int, default=0)
    parser.add_argument("--copy-format", choices=sorted(COPY_FORMATS), default="lines")
    parser.add_argument(
        "--followers-as",
        choices=("processes", "threads"),
        default="processes",
        help="each follower a `hotlist pull --follow` process (as patrol integrations run"
        " it), or threads of this process (one GIL: their applies take turns)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotlist-freshness-") as tmp:
        days = _days(Path(tmp), args.ncic_rows)
        latencies: list[float] = []
        arrivals: list[float] = []
        apply_s: list[float] = []
        per_run: list[dict[str, Any]] = []
        for n in range(args.runs):
            run = one_run(
                Path(tmp) / f"run-{n}",
                days,
                args.followers,
                args.copy_format,
                args.followers_as == "processes",
            )
            kept = OUT / "freshness-logs" / f"run-{n}"  # the server's and watcher's logs
            shutil.rmtree(kept, ignore_errors=True)
            kept.mkdir(parents=True)
            for name in ("serve.log", "watch.log"):
                shutil.copyfile(Path(tmp) / f"run-{n}" / name, kept / name)
            latencies += run.applied
            arrivals += run.arrived
            apply_s += run.apply_s
            per_run.append(
                {
                    "published": run.published,
                    "arrived_p50": statistics.median(run.arrived),
                    "p50": statistics.median(run.applied),
                    "max": max(run.applied),
                    "cpu_s": run.cpu_s,
                }
            )
            print(
                f"run {n + 1}: published {run.published:.2f} s; copies in place p50"
                f" {statistics.median(run.applied):.2f} s, max {max(run.applied):.2f} s"
                f" (answers arrived p50 {statistics.median(run.arrived):.2f} s; one apply"
                f" p50 {statistics.median(run.apply_s):.2f} s); CPU s from the drop: "
                + ", ".join(f"{k} {v:.1f}" for k, v in run.cpu_s.items())
            )
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    result: dict[str, Any] = {
        "data": f"NCIC {args.ncic_rows} lines" if args.ncic_rows else "demo days",
        "followers": args.followers,
        "copy_format": args.copy_format,
        "followers_as": args.followers_as,
        "runs": args.runs,
        "p50_s": statistics.median(latencies),
        "p95_s": percentile(latencies, 0.95),
        "max_s": max(latencies),
        "arrived_p50_s": statistics.median(arrivals),
        "arrived_p95_s": percentile(arrivals, 0.95),
        "apply_p50_s": statistics.median(apply_s),
        "apply_max_s": max(apply_s),
        "per_run": per_run,
        "load_average": load,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    OUT.mkdir(exist_ok=True)
    (OUT / "freshness.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
