"""An embedded, read-only SFTP server for ``hotlist demo`` (paramiko, in-process, loopback).

:func:`serve_directory` serves one directory on ``127.0.0.1`` at a free port until the
``with`` block ends. It generates an ed25519 host key and an ed25519 client key at run time
(files under ``workdir``, mode 0600, deleted on exit), writes a ``known_hosts`` pinning the
host key, and accepts only user ``demo`` with that client key: the demo exercises the same
pinned-host-key, key-only path as a real upstream. Nothing can be written, renamed or
removed, and no path can leave the served directory (symlinks included).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_PERMISSION_DENIED

DEMO_USER = "demo"
#: The server side's paramiko log (a client hanging up abruptly is logged there as an error).
_TRANSPORT_LOG = f"{__name__}.transport"
logging.getLogger(_TRANSPORT_LOG).addHandler(logging.NullHandler())
HOST = "127.0.0.1"
#: Largest read answered at once (OpenSSH's sftp-server answers up to 261120 bytes).
_MAX_READ = 256 * 1024
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


@dataclass(frozen=True)
class EmbeddedSftp:
    """How to reach the embedded server: an ``sftp://`` URL and the files to trust it."""

    url: str
    known_hosts: Path
    private_key: Path


def write_ed25519_key(path: Path) -> paramiko.Ed25519Key:
    """Generate an ed25519 key, write it (OpenSSH format, 0600, replacing any) and load it."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()
    )
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


class _ReadHandle(paramiko.SFTPHandle):
    """An open file, read with pread at the offsets the client asks for."""

    def __init__(self, fd: int) -> None:
        super().__init__(os.O_RDONLY)
        self._fd = fd

    def read(self, offset: int, length: int) -> bytes | int:
        try:
            return os.pread(self._fd, min(length, _MAX_READ), offset)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)

    def stat(self) -> paramiko.SFTPAttributes | int:
        return paramiko.SFTPAttributes.from_stat(os.fstat(self._fd))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        super().close()


class _ReadOnlyDirectory(paramiko.SFTPServerInterface):
    """SFTP view of one local directory: list, stat and read; every change is refused."""

    def __init__(self, server: paramiko.ServerInterface, *args: Any, root: Path, **kwargs: Any):
        super().__init__(server, *args, **kwargs)
        self.root = root.resolve()

    def _local(self, path: str) -> Path:
        """Map a client path into the root; refuse anything that resolves outside it."""
        relative = posixpath.normpath("/" + path).lstrip("/")
        local = (self.root / relative).resolve()
        if local != self.root and self.root not in local.parents:
            raise PermissionError(f"{path} is outside the served directory")
        return local

    def _attributes(self, path: str, *, follow: bool = True) -> paramiko.SFTPAttributes | int:
        try:
            local = self._local(path)
            info = local.stat() if follow else local.lstat()
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 13)
        return paramiko.SFTPAttributes.from_stat(info, local.name)

    def canonicalize(self, path: str) -> str:
        return posixpath.normpath("/" + path)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self._attributes(path)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self._attributes(path, follow=False)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        try:
            directory = self._local(path)
            return [
                paramiko.SFTPAttributes.from_stat(entry.stat(), entry.name)
                for entry in sorted(directory.iterdir())
                if entry.resolve().is_relative_to(self.root)
            ]
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 13)

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> _ReadHandle | int:
        if flags & _WRITE_FLAGS:
            return SFTP_PERMISSION_DENIED
        try:
            fd = os.open(self._local(path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 13)
        return _ReadHandle(fd)

    def remove(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def rename(self, oldpath: str, newpath: str) -> int:
        return SFTP_PERMISSION_DENIED

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return SFTP_PERMISSION_DENIED

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def rmdir(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_PERMISSION_DENIED


class _OneClientKey(paramiko.ServerInterface):
    """Authenticates user ``demo`` with one public key; sessions only, no password, no shell."""

    def __init__(self, client_key: paramiko.PKey) -> None:
        self._client_blob = client_key.asbytes()

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == DEMO_USER and key.asbytes() == self._client_blob:
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Listener:
    """Accepts connections on a loopback socket and runs one paramiko server per connection."""

    def __init__(self, root: Path, host_key: paramiko.PKey, client_key: paramiko.PKey) -> None:
        self.root = root
        self.host_key = host_key
        self.client_key = client_key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(8)
        self.sock.settimeout(1.0)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, name="embedded-sftp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._start_session(conn)

    def _start_session(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.set_log_channel(_TRANSPORT_LOG)
        transport.add_server_key(self.host_key)
        transport.set_subsystem_handler(
            "sftp", paramiko.SFTPServer, _ReadOnlyDirectory, root=self.root
        )
        self._transports = [t for t in self._transports if t.is_active()] + [transport]
        # With an event the handshake runs on the transport's own thread; a slow or hostile
        # client cannot hold up the accept loop.
        transport.start_server(event=threading.Event(), server=_OneClientKey(self.client_key))

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        self.sock.close()
        self._thread.join(timeout=5)
        for transport in self._transports:
            transport.close()


@contextmanager
def serve_directory(root: Path, workdir: Path) -> Iterator[EmbeddedSftp]:
    """Serve ``root`` read-only over SFTP on 127.0.0.1 until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    host_key_path = workdir / "demo_sftp_host_ed25519"
    client_key_path = workdir / "demo_sftp_client_ed25519"
    known_hosts = workdir / "demo_sftp_known_hosts"
    host_key = write_ed25519_key(host_key_path)
    client_key = write_ed25519_key(client_key_path)
    listener = _Listener(root, host_key, client_key)
    known_hosts.write_text(
        f"[{HOST}]:{listener.port} {host_key.get_name()} {host_key.get_base64()}\n"
    )
    known_hosts.chmod(0o600)
    listener.start()
    try:
        yield EmbeddedSftp(
            url=f"sftp://{DEMO_USER}@{HOST}:{listener.port}/",
            known_hosts=known_hosts,
            private_key=client_key_path,
        )
    finally:
        listener.stop()
        host_key_path.unlink(missing_ok=True)
        client_key_path.unlink(missing_ok=True)
        known_hosts.unlink(missing_ok=True)
