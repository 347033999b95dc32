"""The HTTPS leg: ``fetch_https`` against ``curl``, same TLS server, same file, same run.

    .venv/bin/python -m bench.https_leg [--size-mb 125] [--repeats 5] [--conditional]

Starts the embedded HTTPS server (``hotlist.sources.https_server``: a CA and a certificate
generated now) on loopback, then downloads one file alternately with ``fetch_https``
(verified TLS with the CA file and a key pin, hash, ``Content-Length`` check, fsync,
atomic rename) and with ``curl`` (``--cacert``, ``--pinnedpubkey``, ``-o``; no fsync).
Both negotiate the same TLS (reported: ``ours_tls``, ``curl_tls``; TLS 1.3 with
AES-256-GCM here). Each figure is the median of ``repeats`` runs; connection setup counts for both. The legs
take turns at running first in a round: the one that runs right after the previous
round's 125 MB files were deleted pays for the filesystem freeing them (measured: up to
0.3-0.5 s of kernel time on this shared disk), and it used to be ours every time. The
server runs in a process of its own; CPU seconds (ours: this process; curl's: the child)
are reported beside wall time, which a loaded machine makes noisy. A third leg, "script",
is what a download script needs for the same guarantees: ``curl``, then ``sha256sum``,
then ``sync FILE`` (fsync).

After each download of the first two legs, the file is read once more and timed
(``*_read_back_s``): what the parse that follows a fetch pays to read it (from the page
cache, where both leave it; a part file written past the cache was tried and dropped).

``--conditional`` measures instead what it costs to learn that the file is the one taken
last: a conditional GET answered ``304``, against a whole ``curl`` download.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from bench.sftp_leg import write_fixed_width_file
from hotlist.config import SourceConfig
from hotlist.sources import LandedFile, Taken, Unchanged, never_taken
from hotlist.sources.https import fetch_https
from hotlist.sources.https_connection import Connection, Site
from hotlist.sources.https_server import (
    HOST,
    EmbeddedHttps,
    issue,
    make_ca,
    serve_directory,
    spki_pin,
)
from hotlist.sources.https_tls import tls_context


@contextmanager
def _server_process(root: Path, pki: Path) -> Iterator[EmbeddedHttps]:
    """The embedded server in a process of its own: our client shares no GIL with it."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.https_leg", "--serve", str(root), str(pki)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        said = json.loads(child.stdout.readline())
        yield EmbeddedHttps(said["url"], Path(said["ca_file"]), said["pin"])
    finally:
        child.terminate()
        child.wait(timeout=10)


#: nginx serving the bench's directory over TLS: the kind of web server a site like CLEW
#: runs, in C, so that the server's own CPU on the shared cores (the embedded Python
#: server's is about a core while it sends) weighs less in both legs.
_NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ }}
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {root};
    }}
}}
"""


@contextmanager
def _nginx(root: Path, pki: Path) -> Iterator[EmbeddedHttps]:
    """Debian's nginx serving ``root`` with a certificate from a CA generated now."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).is_file():
        raise SystemExit("nginx is not installed (apt-get install nginx), or use --server embedded")
    ca = make_ca(pki)
    cert = issue(ca, pki, "server")
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    user = "user root;" if os.geteuid() == 0 else ""  # workers as nobody cannot enter tmp
    conf = pki / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(
            user=user, prefix=pki, port=port, cert=cert.cert, key=cert.key, root=root
        )
    )
    log = pki / "stderr.log"
    with log.open("wb") as out:
        child = subprocess.Popen([nginx, "-p", str(pki), "-c", str(conf)], stderr=out)
    try:
        for _ in range(100):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if child.poll() is not None:
                    raise SystemExit(f"nginx did not start: {log.read_text()!r}") from None
                time.sleep(0.05)
        yield EmbeddedHttps(f"https://{HOST}:{port}/", ca.cert, spki_pin(cert.cert))
    finally:
        child.terminate()
        child.wait(timeout=10)


def _serve(root: Path, pki: Path) -> None:
    with serve_directory(root, pki) as server:
        print(json.dumps({"url": server.url, "ca_file": str(server.ca_file), "pin": server.pin}))
        sys.stdout.flush()
        sys.stdin.read()  # until the parent closes the pipe or ends us


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (curl; not the server)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``action``."""
    cpu = _cpu_s()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started, _cpu_s() - cpu


def _source(server: EmbeddedHttps, file: Path) -> SourceConfig:
    return SourceConfig(
        url=server.url,
        layout="bench",
        files={"bench": file.name},
        ca_file=server.ca_file,
        tls_pin=server.pin,
    )


def _curl(server: EmbeddedHttps, file: Path, target: Path) -> None:
    command = [
        "curl", "--silent", "--show-error", "--fail",
        "--cacert", str(server.ca_file), "--pinnedpubkey", server.pin.replace("sha256/", "sha256//", 1),
        "--output", str(target), server.url + file.name,
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)


def _curl_hash_sync(server: EmbeddedHttps, file: Path, target: Path) -> None:
    """What a download script needs for the same guarantees: curl, sha256sum, fsync."""
    _curl(server, file, target)
    subprocess.run(["sha256sum", str(target)], check=True, capture_output=True)
    subprocess.run(["sync", str(target)], check=True, capture_output=True)


def _ciphers(server: EmbeddedHttps, file: Path) -> dict[str, str]:
    """The TLS version and cipher each client negotiates with the server: like with like."""
    source = _source(server, file)
    parts = urlsplit(server.url)
    site = Site(parts.hostname or "", parts.port or 443, None)
    connection = Connection(source, tls_context(source, None), site, None)
    try:
        with connection.get(server.url + file.name, {"Range": "bytes=0-0"}) as answer:
            answer.readinto(memoryview(bytearray(1)))
            ours = connection.cipher()
    finally:
        connection.close()
    command = [
        "curl", "--verbose", "--silent", "--cacert", str(server.ca_file),
        "--range", "0-0", "--output", os.devnull, server.url + file.name,
    ]  # fmt: skip
    said = subprocess.run(command, check=True, capture_output=True, text=True).stderr
    curl = re.search(r"SSL connection using (\S+) / (\S+)", said)
    return {
        "ours_tls": " ".join(ours),
        "curl_tls": f"{curl[1]} {curl[2]}" if curl else "unknown",
    }


def _read_through(path: Path) -> None:
    """Read the downloaded file once, as the ingest's parse does right after a fetch:
    from the page cache where the download left it there, else from the disk."""
    with path.open("rb", buffering=0) as fh:
        buffer = bytearray(1 << 20)
        while fh.readinto(buffer):
            pass


def measure_https(
    file: Path, workdir: Path, repeats: int, conditional: bool, server_kind: str = "embedded"
) -> dict[str, float | str]:
    """Seconds and MB/s of ``fetch_https`` and of ``curl``; ratio = our time / curl's."""
    megabytes = file.stat().st_size / 1e6
    landing = workdir / "landing"
    landing.mkdir()
    validators = workdir / "validators.json"
    target = workdir / "curl" / file.name
    target.parent.mkdir()
    times: dict[str, list[float]] = {"ours": [], "curl": [], "script": []}
    cpu: dict[str, list[float]] = {"ours": [], "curl": [], "script": []}
    read_back: dict[str, list[float]] = {"ours": [], "curl": []}
    kept = {"ours": landing / file.name, "curl": target}
    serving = _nginx if server_kind == "nginx" else _server_process
    with serving(file.parent, workdir / "pki") as server:
        ciphers = _ciphers(server, file)
        source = _source(server, file)
        last: Taken | None = None
        if conditional:
            [first] = fetch_https(source, ["bench"], landing, never_taken, validators)
            assert isinstance(first, LandedFile)
            last = Taken(first.name, first.sha256)
            first.path.unlink()

        def ours() -> None:
            found = fetch_https(source, ["bench"], landing, lambda _feed: last, validators)
            if conditional:
                assert found == [Unchanged("bench", file.name)], found

        runs: dict[str, Callable[[], object]] = {
            "ours": ours,
            "curl": lambda: _curl(server, file, target),
            "script": lambda: _curl_hash_sync(server, file, target),
        }
        for turn in range(repeats):
            names = list(runs)
            for name in names[turn % 3 :] + names[: turn % 3]:  # each leg first in turn
                run = runs[name]
                wall, used = _timed(run)
                times[name].append(wall)
                cpu[name].append(used)
                if name in read_back and not conditional:
                    read_back[name].append(_timed(functools.partial(_read_through, kept[name]))[0])
                (landing / file.name).unlink(missing_ok=True)
                target.unlink(missing_ok=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "size_mb": megabytes,
        "ours_s": median["ours"],
        "curl_s": median["curl"],
        "ours_mb_s": megabytes / median["ours"],
        "curl_mb_s": megabytes / median["curl"],
        "ratio": median["ours"] / median["curl"],
        "script_s": median["script"],
        "ratio_vs_script": median["ours"] / median["script"],
        "ours_cpu_s": statistics.median(cpu["ours"]),
        "curl_cpu_s": statistics.median(cpu["curl"]),
        "cpu_ratio": statistics.median(cpu["ours"]) / statistics.median(cpu["curl"]),
        "script_cpu_s": statistics.median(cpu["script"]),
        **{
            f"{name}_read_back_s": statistics.median(values)
            for name, values in read_back.items()
            if values
        },
        **ciphers,
        "server": server_kind,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=125.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--conditional", action="store_true")
    parser.add_argument(
        "--server", choices=("embedded", "nginx"), default="embedded",
        help="the embedded Python server (the demo's) or Debian's nginx",
    )  # fmt: skip
    parser.add_argument("--serve", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(*args.serve)
        return
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed: it is the baseline (apt-get install curl)")
    with tempfile.TemporaryDirectory(prefix="hotlist-https-bench-") as tmp:
        workdir = Path(tmp)
        served = workdir / "served"
        served.mkdir()
        file = write_fixed_width_file(served / "VEHEXTRT.txt", int(args.size_mb * 1e6))
        published = time.time() - 3600  # a file published earlier: its validators hold
        os.utime(file, (published, published))
        figures = measure_https(file, workdir, args.repeats, args.conditional, args.server)
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps(rounded, indent=2))


if __name__ == "__main__":
    main()
