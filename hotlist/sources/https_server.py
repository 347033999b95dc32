"""An embedded, read-only HTTPS server for ``hotlist demo`` (and the tests and the bench).

:func:`serve_directory` serves one directory on ``127.0.0.1`` at a free port until the
``with`` block ends, over TLS with a certificate issued at run time by a CA generated at
run time (:func:`make_ca`, :func:`issue`; keys are files under ``workdir``, mode 0600).
The client trusts that CA through ``ca_file``: the demo exercises the same verified-TLS
path as a real upstream. It answers GET and HEAD with the validators a web server sends
(``ETag``, ``Last-Modified``), honours ``If-None-Match`` / ``If-Modified-Since`` (304) and
single ``Range`` requests (206, with ``If-Range``); nothing else. No path leaves the
served directory.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CA:
    """A certificate authority generated at run time: its certificate file and its key."""

    cert: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _write_private(path: Path, data: bytes) -> Path:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(directory: Path, common_name: str = "hotlist demo CA") -> CA:
    """A new self-signed CA (P-256); its certificate is written to ``directory/<cn>.pem``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / (common_name.replace(" ", "-") + ".pem")
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CA(path, key, cert)


def issue(
    ca: CA,
    directory: Path,
    stem: str,
    hosts: tuple[str, ...] = (HOST, "localhost"),
    *,
    client: bool = False,
) -> Issued:
    """A server (or ``client``) certificate for ``hosts`` signed by ``ca``: ``stem.pem`` and
    ``stem.key`` (unencrypted PKCS#8, 0600) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if not client else stem))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    cert_path = directory / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Issued(cert_path, _write_private(directory / f"{stem}.key", key_pem))


def spki_pin(cert_pem: Path) -> str:
    """``sha256/<base64>`` of a PEM certificate's public key (SubjectPublicKeyInfo)."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


class StaticHandler(BaseHTTPRequestHandler):
    """GET/HEAD of files in ``server.root`` with validators, 304 and single ranges."""

    server: HttpsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # request lines name files; the demo and the tests report what matters

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(30)

    def do_HEAD(self) -> None:
        self.serve(body=False)

    def do_GET(self) -> None:
        self.serve(body=True)

    def local_path(self) -> Path | None:
        relative = self.path.split("?", 1)[0].lstrip("/")
        if not relative or "\x00" in relative or ".." in relative.split("/"):
            return None
        path = (self.server.root / relative).resolve()
        return path if path.is_relative_to(self.server.root) and path.is_file() else None

    def serve(self, *, body: bool) -> None:
        path = self.local_path()
        if path is None:
            self.send_error(404)
            return
        info = path.stat()
        etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
        modified = email.utils.formatdate(info.st_mtime, usegmt=True)
        if self.not_modified(etag, info.st_mtime):
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = self.byte_range(etag, modified, info.st_size)
        self.send_response(206 if (start, end) != (0, info.st_size) else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.send_header("Accept-Ranges", "bytes")
        if (start, end) != (0, info.st_size):
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{info.st_size}")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if body:
            self.send_body(path, start, end)

    def not_modified(self, etag: str, mtime: float) -> bool:
        match = self.headers.get("If-None-Match")
        if match is not None:
            return etag in [tag.strip() for tag in match.split(",")]
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                return int(mtime) <= email.utils.parsedate_to_datetime(since).timestamp()
            except (TypeError, ValueError):
                return False
        return False

    def byte_range(self, etag: str, modified: str, size: int) -> tuple[int, int]:
        wanted = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if not wanted.startswith("bytes=") or (if_range and if_range not in {etag, modified}):
            return 0, size
        first, _, last = wanted[len("bytes=") :].partition("-")
        try:
            start = int(first)
            end = int(last) + 1 if last else size
        except ValueError:
            return 0, size
        return (start, min(end, size)) if 0 <= start < size and start < end else (0, size)

    def send_body(self, path: Path, start: int, end: int) -> None:
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start
            while left > 0:
                block = fh.read(min(_CHUNK, left))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)


class HttpsServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections are TLS (handshake in the handler thread)."""

    daemon_threads = True

    def __init__(self, root: Path, tls: ssl.SSLContext, handler: type[StaticHandler]) -> None:
        self.root = root.resolve()
        self.tls = tls
        super().__init__((HOST, 0), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(30)
            request.do_handshake()
        except (OSError, ssl.SSLError):
            return  # a client that refuses our certificate hangs up here: that is its right
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client hanging up mid-body is not the server's error to print


def server_context(cert: Issued, client_ca: Path | None = None) -> ssl.SSLContext:
    """TLS 1.2+ server context; with ``client_ca``, a client certificate is required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert.cert, cert.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


@contextmanager
def running(server: HttpsServer) -> Iterator[HttpsServer]:
    """Serve in a thread until the block ends."""
    thread = threading.Thread(target=server.serve_forever, name="https-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass(frozen=True)
class EmbeddedHttps:
    """How to reach the embedded server: its base URL and the CA file to trust it with."""

    url: str
    ca_file: Path
    pin: str


@contextmanager
def serve_directory(root: Path, workdir: Path) -> Iterator[EmbeddedHttps]:
    """Serve ``root`` over HTTPS on loopback with a CA and certificate generated now."""
    ca = make_ca(workdir)
    cert = issue(ca, workdir, "server")
    server = HttpsServer(root, server_context(cert), StaticHandler)
    try:
        with running(server):
            yield EmbeddedHttps(f"https://{HOST}:{server.port}/", ca.cert, spki_pin(cert.cert))
    finally:
        cert.key.unlink(missing_ok=True)
