"""The lookup leg: server CPU per lookup and per batched read, and open-loop latency.

    python -m bench.lookup_leg [--ncic-rows 20000] [--lookups 3000] [--seconds 10]

Builds a store (``--ncic-rows`` NCIC lines and the three SVS tables, ingested and
published), serves it with ``hotlist serve`` in a process of its own, and measures:

* CPU per lookup: ``--lookups`` sequential ``POST /v1/lookup`` over one keep-alive
  connection (half hits, half misses); the server process's CPU seconds (utime + stime
  from ``/proc/<pid>/stat``) over the requests, which holds steady on a noisy machine,
  unlike wall time;
* CPU per batched read: batches of 1,000 reads to ``POST /v1/lookup/batch``, likewise;
* open-loop latency: ``bench/load.py`` (a process of its own) at 500 and 2,000
  lookups/s beside 50 consumers pulling deltas; its p50/p99, the server's CPU per
  request meanwhile, and the load generator's own CPU per request;
* the floors, measured the same way in the same run: the same requests answered by a
  bare ASGI app and by a bare FastAPI route on the same uvicorn (httptools, uvloop),
  no gate, no log, no lookup; CPU per lookup is also given as a ratio to them.

Prints one JSON object and writes it to ``bench/out/lookup.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hotlist.serve.lookups import LookupRequest  # module level: FastAPI resolves it by name

OUT = Path(__file__).parent / "out"
CLOCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (``/proc/<pid>/stat``), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK


def build_store(root: Path, ncic_rows: int) -> Path:
    """Days 1 and 2 of the bench dataset at ``ncic_rows``, each ingested and published."""
    from bench.run import stage, write_config
    from hotlist.samples import write_bench_dataset

    config = root / "store" / "hotlist.toml"
    if (root / "store" / "data" / "published" / "CURRENT.json").exists():
        return config
    shutil.rmtree(root / "store", ignore_errors=True)
    small = max(ncic_rows // 20, 100)
    dataset = write_bench_dataset(
        root / "dataset", ncic_rows=ncic_rows, svs_rows=small, sfr_rows=small, slr_rows=small
    )
    drop = root / "store" / "drop"
    write_config(root / "store", drop)
    for day in (dataset.day1, dataset.day2):  # two versions: consumers pull a delta
        for source in ("ncic", "svs"):
            stage(day, drop, source)
            subprocess.run(
                [sys.executable, "-m", "bench.child", "ingest", str(config), source],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "bench.child", "purge", str(config)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(config: Path) -> Iterator[tuple[int, int]]:
    """``hotlist serve`` in its own process; yields (pid, port) once it answers."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotlist", "serve", "-c", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(240):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.25)
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def consumer_key(config: Path, name: str) -> str:
    from hotlist.config import load_settings
    from hotlist.serve import consumers as reg
    from hotlist.serve.registry import registry_for

    with registry_for(load_settings(config)) as registry:
        if name in {c.name for c in registry.all_consumers()}:
            return registry.rotate(name)
        return registry.add(name, "CA0190000", "Bench PD", reg.AgencyKind.CA_LOCAL)


def plates_of(config: Path, count: int) -> list[str]:
    """Half plates on the list, half not (most reads a camera makes are misses)."""
    import polars as pl

    from hotlist.config import load_settings

    data_dir = load_settings(config).data_dir
    current = json.loads((data_dir / "published" / "CURRENT.json").read_text())
    parquet = data_dir / "published" / current["dir"] / "hotlist.parquet"
    listed = pl.read_parquet(parquet, columns=["plate"])["plate"]
    hits = listed.sample(count // 2, seed=1, with_replacement=True).to_list()
    return [
        p
        for pair in zip(hits, [f"ZZ{i:05d}" for i in range(count // 2)], strict=True)
        for p in pair
    ]


def sequential(port: int, pid: int, key: str, bodies: list[bytes], path: str) -> dict[str, float]:
    """Send ``bodies`` one after another over one keep-alive connection; CPU of both sides."""
    headers = {
        "Authorization": f"Bearer {key}", "X-User": "bench", "X-Purpose": "patrol",
        "Content-Type": "application/json",
    }  # fmt: skip
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    con.request("POST", path, bodies[0], headers)  # warm: the version is loaded
    con.getresponse().read()
    server_before, client_before = cpu_seconds(pid), time.process_time()
    started = time.perf_counter()
    for body in bodies:
        con.request("POST", path, body, headers)
        response = con.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{path} answered {response.status}")
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(pid) - server_before
    client_cpu = time.process_time() - client_before
    con.close()
    return {"requests": len(bodies), "server_cpu_s": server_cpu, "client_cpu_s": client_cpu,
            "wall_s": wall}  # fmt: skip


def open_loop(
    port: int, pid: int, key: str, plates_file: Path, rate: float, seconds: float, since: int
) -> dict[str, Any]:
    before = cpu_seconds(pid)
    load = subprocess.run(
        [sys.executable, "-m", "bench.load", "--url", f"http://127.0.0.1:{port}", "--key", key,
         "--since", str(since), "--plates", str(plates_file), "--rate", str(rate),
         "--duration", str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    server_cpu = cpu_seconds(pid) - before
    found: dict[str, Any] = json.loads(load.stdout)
    requests = found["lookups"] + found["delta_pulls"]
    found["server_cpu_ms_per_request"] = round(1000 * server_cpu / max(requests, 1), 3)
    return found


ECHO_APPS = ("asgi", "fastapi")


def echo_app(kind: str) -> Any:
    """A floor: answers every request with ``{}`` (``asgi``), or a FastAPI route that
    validates the lookup body and answers it (``fastapi``)."""
    if kind == "asgi":

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", b"2")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"{}"})

        return app
    from fastapi import FastAPI

    fast = FastAPI()

    @fast.post("/v1/lookup")
    async def lookup(body: LookupRequest) -> dict[str, Any]:
        return {"plate": body.plate, "hits": []}

    return fast


@contextmanager
def echo_server(kind: str) -> Iterator[tuple[int, int]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.lookup_leg", "--echo", kind, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(240):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.25)
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ncic-rows", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="500,2000", help='open-loop rates; "" for none')
    parser.add_argument("--echo", choices=ECHO_APPS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        import uvicorn

        uvicorn.run(echo_app(args.echo), port=args.port, log_level="warning", access_log=False)
        return
    root = OUT / f"lookup-{args.ncic_rows}"
    config = build_store(root, args.ncic_rows)
    key = consumer_key(config, "bench-lookups")
    plates = plates_of(config, max(args.lookups, 4000))
    plates_file = root / "plates.txt"
    plates_file.write_text("\n".join(plates))
    results: dict[str, Any] = {"ncic_rows": args.ncic_rows}
    bodies = [json.dumps({"plate": p}).encode() for p in plates[: args.lookups]]
    for kind in ECHO_APPS:
        with echo_server(kind) as (pid, port):
            floor = sequential(port, pid, key, bodies, "/v1/lookup")
        results[f"floor_{kind}_server_cpu_ms_per_request"] = round(
            1000 * floor["server_cpu_s"] / floor["requests"], 3
        )
    with server(config) as (pid, port):
        one = sequential(port, pid, key, bodies, "/v1/lookup")
        per_lookup = 1000 * one["server_cpu_s"] / one["requests"]
        results["lookup"] = {
            **one,
            "server_cpu_ms_per_lookup": round(per_lookup, 3),
            "x_floor_asgi": round(per_lookup / results["floor_asgi_server_cpu_ms_per_request"], 2),
            "x_floor_fastapi": round(
                per_lookup / results["floor_fastapi_server_cpu_ms_per_request"], 2
            ),
            "client_cpu_ms_per_request": round(1000 * one["client_cpu_s"] / one["requests"], 3),
            "lookups_per_s": round(one["requests"] / one["wall_s"], 1),
        }
        batch_bodies = [
            json.dumps(
                {"reads": [{"plate": p, "state": None} for p in plates[i : i + 1000]]}
            ).encode()
            for i in range(0, 1000 * args.batches, 1000)
            if len(plates[i : i + 1000]) == 1000
        ] or [json.dumps({"reads": [{"plate": p} for p in plates[:1000]]}).encode()]
        reps = max(1, args.batches // len(batch_bodies))
        many = sequential(port, pid, key, batch_bodies * reps, "/v1/lookup/batch")
        reads = many["requests"] * 1000
        results["batch"] = {
            **many,
            "reads": reads,
            "server_cpu_ms_per_read": round(1000 * many["server_cpu_s"] / reads, 4),
            "reads_per_s": round(reads / many["wall_s"], 1),
        }
        since = int(json.loads((config.parent / "data/published/CURRENT.json").read_text())[
            "version"])  # fmt: skip
        for rate in (float(r) for r in args.rates.split(",") if r.strip()):  # "": none
            results[f"open_loop_{int(rate)}"] = open_loop(
                port, pid, key, plates_file, rate, args.seconds, max(since - 1, 0)
            )
    OUT.mkdir(exist_ok=True)
    (OUT / "lookup.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
