"""A bounded loopback load test of the patrol API, in its own process; stops by itself.

    python -m bench.load --url URL --key KEY --since V --plates FILE [--rate 500]

An open-loop stream of lookups at ``--rate`` per second (latency measured from each
request's scheduled start, so a slow server cannot hide behind a slow client) runs
beside ``--consumers`` patrol systems, each pulling the delta since ``V`` every
``--pull-every`` seconds. The client speaks HTTP/1.1 over keep-alive connections with
asyncio streams directly, so that on two shared cores the load generator costs the
server as little CPU as possible (on uvloop, one read of each response's head). Prints
one JSON object: lookup p50/p99/max in ms, lookups/s achieved, delta pulls and their p50
latency, errors, and this process's own CPU per request (so a reader can tell whether
the generator, not the server, was the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from urllib.parse import urlparse


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole response."""

    def __init__(self, host: str, port: int, headers: str) -> None:
        self.host, self.port, self.headers = host, port, headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, int]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(head + body)
            try:
                response_head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except asyncio.IncompleteReadError:
                # The server closed an idle keep-alive connection: open a new one, once.
                self.writer.close()
                self.writer = None
                if attempt == 2:
                    raise ConnectionError("the server closed the connection") from None
        assert self.reader is not None
        lines = response_head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status, length


async def run(args: argparse.Namespace) -> dict[str, object]:
    plates = [p for p in Path(args.plates).read_text().split() if p]
    url = urlparse(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    headers = f"Authorization: Bearer {args.key}\r\nX-User: loadtest\r\nX-Purpose: patrol\r\n"
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        pool.put_nowait(Connection(host, port, headers))
    lookups: list[float] = []
    pulls: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + args.duration

    async def lookup(plate: str, scheduled: float) -> None:
        conn = await pool.get()
        try:
            status, _ = await conn.request(
                "POST", "/v1/lookup", json.dumps({"plate": plate}).encode()
            )
        finally:
            pool.put_nowait(conn)
        if status != 200:
            errors.append(f"lookup {status}")
        lookups.append(time.perf_counter() - scheduled)

    async def consumer() -> None:
        await asyncio.sleep(random.random() * args.pull_every)  # noqa: S311
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            conn = Connection(host, port, headers)  # a patrol system connects per pull
            status, _ = await conn.request("GET", f"/v1/hotlist?since={args.since}&format=parquet")
            conn.close()
            if status != 200:
                errors.append(f"pull {status}")
            pulls.append(time.perf_counter() - started)
            await asyncio.sleep(args.pull_every)

    cpu_before = time.process_time()
    pullers = [asyncio.create_task(consumer()) for _ in range(args.consumers)]
    tasks = []
    interval = 1.0 / args.rate
    start = time.perf_counter()
    i = 0
    while (scheduled := start + i * interval) < deadline:
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(lookup(plates[i % len(plates)], scheduled)))
        i += 1
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await asyncio.gather(*pullers)
    own_cpu = time.process_time() - cpu_before
    ordered = sorted(lookups)
    return {
        "lookups": len(ordered),
        "lookups_per_s": round(len(ordered) / elapsed, 1),
        "lookup_p50_ms": round(1000 * ordered[len(ordered) // 2], 2),
        "lookup_p99_ms": round(1000 * ordered[int(len(ordered) * 0.99)], 2),
        "lookup_max_ms": round(1000 * ordered[-1], 2),
        "delta_pulls": len(pulls),
        "delta_pull_p50_ms": round(1000 * statistics.median(pulls), 1) if pulls else None,
        "errors": len(errors),
        "rate_asked": args.rate,
        "generator_cpu_ms_per_request": round(
            1000 * own_cpu / max(len(ordered) + len(pulls), 1), 3
        ),
        "generator_cpu_share_of_a_core": round(own_cpu / elapsed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--since", type=int, required=True)
    parser.add_argument("--plates", required=True)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--consumers", type=int, default=50)
    parser.add_argument("--pull-every", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    try:
        import uvloop  # the server's dependency: a lighter loop for the generator too
    except ImportError:
        print(json.dumps(asyncio.run(run(args))))
    else:
        print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
