"""A real OpenSSH ``sshd`` on loopback, for tests and benchmarks (never used in production).

:class:`SshdServer` runs ``/usr/sbin/sshd -D -e -f CONFIG`` with everything in its own
temporary directory: the config, a generated ed25519 host key, a generated ed25519 client
key (the only authorized key), the directory it serves, a ``known_hosts`` pinning its host
key, and sshd's log. Outside that directory it only ensures ``/run/sshd`` exists (sshd's
privilege separation directory, needed when running as root).

The directory is world-traversable (0755) so that sshd can also log a session in as an
unprivileged user (:func:`unprivileged_user`): such a session reads the authorized keys and
the served files with that user's rights, which makes a real "permission denied" possible
even when the tests run as root.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
LOOPBACK = "127.0.0.1"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class SshdUnavailable(RuntimeError):
    """This machine cannot run the test sshd; the message says what to install."""


def sshd_unavailable_reason(sshd: Path = SSHD) -> str | None:
    """Why a real sshd cannot be started here, or None when it can."""
    if not sshd.exists():
        return f"{sshd} is not installed (Debian package: openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed (Debian package: openssh-client)"
    return None


def current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def unprivileged_user() -> str | None:
    """A local account that file permissions apply to: this user unless root, else ``nobody``."""
    if os.geteuid() != 0:
        return current_user()
    try:
        return pwd.getpwnam("nobody").pw_name
    except KeyError:
        return None


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def generate_ed25519_key(path: Path, comment: str) -> str:
    """Write a passphrase-less ed25519 key pair at ``path`` (0600); return the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text("ascii").strip()


def fingerprint_of_public_key(line: str) -> str:
    """OpenSSH's ``SHA256:base64`` fingerprint of a ``type base64 [comment]`` public key line."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_line(port: int, public_key_line: str, host: str = LOOPBACK) -> str:
    """A known_hosts entry; ports other than 22 are written ``[host]:port``."""
    key_type, key_b64 = public_key_line.split()[:2]
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key_type} {key_b64}\n"


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (sshd's session processes call setsid, so no process group)."""
    if not Path("/proc").is_dir():
        return []
    children = _children_by_parent()
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class SshdServer:
    """One sshd serving ``root`` on ``127.0.0.1:port``; start, stop, kill, restart at will."""

    def __init__(self, *, sshd: Path = SSHD, parent: Path | None = None) -> None:
        reason = sshd_unavailable_reason(sshd)
        if reason is not None:
            raise SshdUnavailable(reason)
        self.sshd = sshd
        self.base = Path(tempfile.mkdtemp(prefix="hotlist-sshd-", dir=parent))
        self.base.chmod(0o755)
        self.root = self._mkdir("srv", 0o755)
        etc = self._mkdir("etc", 0o755)
        client = self._mkdir("client", 0o700)
        self.host_key = etc / "ssh_host_ed25519_key"
        self.host_public_key = generate_ed25519_key(self.host_key, "hotlist-test-host")
        self.host_key_fingerprint = fingerprint_of_public_key(self.host_public_key)
        self.client_key = client / "id_ed25519"
        self.client_public_key = generate_ed25519_key(self.client_key, "hotlist-test-client")
        self.authorized_keys = etc / "authorized_keys"
        self.authorized_keys.write_text(self.client_public_key + "\n")
        self.authorized_keys.chmod(0o644)
        self.config = etc / "sshd_config"
        self.known_hosts = self.base / "known_hosts"
        self.log = self.base / "sshd.log"
        self.pid_file = self.base / "sshd.pid"
        self.user = current_user()
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _mkdir(self, name: str, mode: int) -> Path:
        path = self.base / name
        path.mkdir()
        path.chmod(mode)
        return path

    def _write_config(self) -> None:
        root_login = "prohibit-password" if os.geteuid() == 0 else "no"
        self.config.write_text(
            f"""\
ListenAddress {LOOPBACK}
Port {self.port}
HostKey {self.host_key}
PidFile {self.pid_file}
AuthorizedKeysFile {self.authorized_keys}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin {root_login}
UsePAM no
StrictModes no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""
        )
        self.known_hosts.write_text(known_hosts_line(self.port, self.host_public_key))

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> SshdServer:
        """Start sshd and wait until it answers with an SSH banner on its port."""
        if self.running:
            return self
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        for _ in range(3):
            with open(self.log, "ab") as log:
                self._process = subprocess.Popen(
                    [str(self.sshd), "-D", "-e", "-f", str(self.config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return self
            self._terminate(signal.SIGKILL)
            time.sleep(0.2)
        raise RuntimeError(f"sshd did not start on port {self.port}; log:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1.0) as probe:
                    if probe.recv(4) == b"SSH-":
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _terminate(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None:
            return
        sessions = descendants(process.pid)
        _signal_all([process.pid], sig)
        _signal_all(sessions, sig)
        _signal_all([process.pid, *sessions], signal.SIGCONT)  # a frozen sshd must see it
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _signal_all(sessions, signal.SIGKILL)
        self._process = None

    def stop(self) -> None:
        """Stop sshd and every session it started (SIGTERM, then SIGKILL)."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """Kill sshd and its sessions at once (SIGKILL): open connections drop mid-stream."""
        self._terminate(signal.SIGKILL)

    def _signal_sessions(self, sig: signal.Signals) -> None:
        if self._process is not None:
            _signal_all([self._process.pid, *descendants(self._process.pid)], sig)

    def freeze(self) -> None:
        """Stop sshd and its sessions (SIGSTOP): connections stay open but nothing answers."""
        self._signal_sessions(signal.SIGSTOP)

    def thaw(self) -> None:
        """Let frozen sshd processes run again (SIGCONT)."""
        self._signal_sessions(signal.SIGCONT)

    def restart(self) -> None:
        """Stop if running, then start again on the same port with the same keys."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and delete the temporary directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> SshdServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def authorize(self, public_key_line: str) -> None:
        """Accept one more client key (sshd reads authorized_keys at each login)."""
        with open(self.authorized_keys, "a") as keys:
            keys.write(public_key_line.strip() + "\n")

    # -- addressing ------------------------------------------------------------------------

    def url_for(self, remote_dir: Path | str | None = None, *, user: str | None = None) -> str:
        """``sftp://user@127.0.0.1:port/abs/dir`` for a directory (default: the served root)."""
        directory = self.root if remote_dir is None else self.root / remote_dir
        return f"sftp://{quote(user or self.user)}@{LOOPBACK}:{self.port}{quote(str(directory))}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
