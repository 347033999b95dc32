"""Real API servers for tests: uvicorn in a thread of the test process, or in a process of
its own (``hotlist serve``) where the test measures the server apart from itself."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hotlist.serve.app import serving as running_api
from hotlist.serve.copies import COPY_FILES
from hotlist.serve.copy_lines import read_lines

__all__ = ["ServerProcess", "local_copy", "raw_request", "running_api", "server_process"]


def local_copy(out: Path) -> pl.DataFrame:
    """The entries of the copy a pull keeps in ``out``, whichever its format."""
    lines = out / COPY_FILES["lines"]
    return read_lines(lines) if lines.exists() else pl.read_parquet(out / COPY_FILES["parquet"])


@dataclass(frozen=True)
class ServerProcess:
    pid: int
    port: int
    stderr: Path

    def rss_bytes(self) -> int:
        """Resident memory of the server process now (``/proc``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for process {self.pid}")


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Until ``proc`` accepts connections on ``port`` (60 s at most); its log's end in the
    error when it exits or never listens."""
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen: {log.read_text()[-3000:]}") from None
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server_process(config: Path, tmp: Path, *args: str) -> Iterator[ServerProcess]:
    """``hotlist serve -c CONFIG [ARGS]`` on loopback (reached at 127.0.0.1 whatever
    ``--host`` ARGS give) in a process of its own; stopped at the end."""
    port = _free_port()
    stderr = tmp / f"serve-{port}.log"
    command = ["serve", "-c", str(config), "--port", str(port), *args]
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hotlist", *command],
            stdout=err,
            stderr=err,
            env={k: v for k, v in os.environ.items() if not k.startswith("HOTLIST_")},
        )
    try:
        wait_listening(port, proc, stderr, "hotlist serve")
        yield ServerProcess(proc.pid, port, stderr)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def raw_request(
    url: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, bytes]:
    """One request sent header by header (``http.client``): a repeated header goes out
    twice, as client libraries that merge headers never send it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    con = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        con.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            con.putheader(name, value.encode())  # UTF-8 bytes, as a hostile client sends them
        if body:
            con.putheader("Content-Length", str(len(body)))
        con.endheaders(body or None)
        response = con.getresponse()
        return response.status, response.read()
    finally:
        con.close()
