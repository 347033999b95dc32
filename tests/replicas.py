"""Several ``hotlist serve`` replicas and an nginx in front of them, as real processes.

:func:`replica_config` writes one replica's configuration (PostgreSQL, the shared
``published_dir``, its ``data_dir``); :func:`replicas` starts one ``hotlist serve`` per
configuration on free loopback ports, each under its own ``--name``; :func:`nginx` runs
the shipped example (``docs/deploy/nginx.conf``) in front of them, with only its marked
values (the replicas' addresses, the port, the certificate) replaced, TLS ending at
nginx with a certificate made by ``openssl`` for the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving import _free_port, wait_listening

NGINX_EXAMPLE = Path(__file__).parent.parent / "docs" / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def replica_config(
    path: Path,
    *,
    data_dir: Path,
    published_dir: Path,
    database_url: str,
    drop: Path,
    extra: str = "",
) -> Path:
    """A configuration of the ingest host or of one replica: the same database and
    ``published_dir`` for all; ``data_dir`` per host."""
    path.write_text(
        f"""
data_dir = "{data_dir}"
[serve]
database_url = "{database_url}"
published_dir = "{published_dir}"
[purge]
replica_wait_s = 10
{extra}
[sources.svs]
url = "file://{drop}"
[sources.ncic]
url = "file://{drop}"
guards = {{max_removal_share = 0.5}}
"""
    )
    return path


@dataclass
class ReplicaProcess:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGCONT)  # a paused one cannot stop otherwise
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def replicas(configs: Sequence[Path], tmp: Path) -> Iterator[list[ReplicaProcess]]:
    """``hotlist serve -c CONFIG --name replica-N`` per configuration, each on a free
    loopback port; all stopped (SIGTERM, SIGKILL after 30 s) at the end."""
    started: list[ReplicaProcess] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLIST_")}
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        for i, config in enumerate(configs):
            port, name = _free_port(), f"replica-{i + 1}"
            log = tmp / f"{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "hotlist", "serve", "-c", str(config),
                     "--port", str(port), "--name", name],
                    stdout=out, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
            started.append(ReplicaProcess(name, port, proc, log))
        for replica in started:
            wait_listening(replica.port, replica.proc, replica.log, f"replica {replica.name}")
        yield started
    finally:
        for replica in started:
            _end(replica.proc)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl now."""
    cert, key = tmp / "api.crt", tmp / "api.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def client_tls(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def render_nginx(ports: Sequence[int], listen: int, cert: Path, key: Path) -> str:
    """The shipped example with this test's replicas, port and certificate in place of
    its marked values; each must be found, so the example cannot drift from the test."""
    text = NGINX_EXAMPLE.read_text()
    server = re.compile(r"^(\s*)server 10\.0\.0\.\d+:8765( [^;]*);.*\n", re.MULTILINE)
    found = server.findall(text)
    assert found, "no replica lines (server 10.0.0.N:8765 ...) in the nginx example"
    indent, params = found[0]
    lines = "".join(f"{indent}server 127.0.0.1:{p}{params};\n" for p in ports)
    text, n = server.subn("", text)
    text = text.replace("upstream hotlist_replicas {\n", "upstream hotlist_replicas {\n" + lines)
    for pattern, value in (
        (r"listen 443 ssl;", f"listen 127.0.0.1:{listen} ssl;"),
        (r"ssl_certificate /etc/hotlist/tls/api\.crt;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key /etc/hotlist/tls/api\.key;", f"ssl_certificate_key {key};"),
    ):
        text, n = re.subn(pattern, value, text)
        assert n == 1, f"{pattern!r} is not once in {NGINX_EXAMPLE}"
    return text


#: What the distribution's nginx.conf gives the example: the main context and an http
#: block, every path under the test's prefix. The access log names the replica each
#: request went to, and the status it got.
_MAIN = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format upstream '$status $upstream_addr $upstream_status $request_method $uri';
    access_log {prefix}/access.log upstream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/hotlist.conf;
}}
"""


@dataclass(frozen=True)
class Nginx:
    url: str
    cert: Path  # the certificate it presents (self-signed): what clients trust
    access_log: Path
    error_log: Path

    def upstreams(self) -> list[str]:
        """``$upstream_addr`` of each request so far, in order."""
        return [line.split()[1] for line in self.access_log.read_text().splitlines()]


@contextlib.contextmanager
def nginx(ports: Sequence[int], tmp: Path) -> Iterator[Nginx]:
    """The example configuration run by a real nginx in front of ``ports``."""
    if not Path(NGINX).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed")
        pytest.skip("nginx is not installed")
    prefix = tmp / "nginx"
    prefix.mkdir()
    cert, key = self_signed(prefix)
    listen = _free_port()
    (prefix / "hotlist.conf").write_text(render_nginx(ports, listen, cert, key))
    # As root, workers would run as nobody, who cannot enter the test's directories.
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(_MAIN.format(prefix=prefix, user=user))
    log = prefix / "stderr.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_listening(listen, proc, log, "nginx")
        yield Nginx(
            f"https://127.0.0.1:{listen}", cert, prefix / "access.log", prefix / "error.log"
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
