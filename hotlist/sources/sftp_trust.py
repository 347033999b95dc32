"""Trust for ``sftp://`` sources: the pinned host keys and the client's own key.

The server is trusted only through the host keys in ``known_hosts``: an unknown host or
a changed key is refused (CJIS: pin the server's host key), never learned, and the
refusal says which key was offered and how to pin it after checking it out of band. The
client authenticates with ``private_key`` (ed25519 or RSA, readable by its owner alone);
an encrypted key is opened with ``HOTLIST_SFTP_PASSPHRASE`` or a Prefect Secret block.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NoReturn

import paramiko

from hotlist.config import SourceConfig
from hotlist.sources import FetchError, FetchFailure

PASSPHRASE_ENV = "HOTLIST_SFTP_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)


def known_hosts_file(source: SourceConfig) -> Path:
    """The configured ``known_hosts`` file; required, and it must exist."""
    if source.known_hosts is None:
        raise FetchError(
            FetchFailure.CONFIG,
            "known_hosts is required for sftp:// sources: set it to a known_hosts file holding"
            " the server's host key (ssh-keyscan, then verify the fingerprint out of band)",
        )
    if not source.known_hosts.is_file():
        raise FetchError(
            FetchFailure.CONFIG, f"known_hosts file {source.known_hosts} does not exist"
        )
    return source.known_hosts


def _secret_block(name: str | None) -> str | None:
    """The passphrase kept in a Prefect Secret block (loaded from the Prefect API)."""
    if not name:
        return None
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except ValueError:
        raise FetchError(
            FetchFailure.CONFIG, f"passphrase_secret: no Prefect Secret block named {name!r}"
        ) from None
    return str(value)


def load_private_key(source: SourceConfig) -> paramiko.PKey:
    """Load ``private_key``; an encrypted key is opened with ``HOTLIST_SFTP_PASSPHRASE``."""
    path = source.private_key
    if path is None:
        raise FetchError(
            FetchFailure.CONFIG,
            "private_key is required for sftp:// sources (an ed25519 or RSA key file)",
        )
    try:
        mode = path.stat().st_mode
    except OSError:
        raise FetchError(FetchFailure.CONFIG, f"private_key {path} cannot be read") from None
    if mode & 0o077:
        raise FetchError(
            FetchFailure.CONFIG,
            f"private_key {path} is accessible by other users (mode {stat.S_IMODE(mode):o});"
            f" run chmod 600 {path}",
        )
    try:
        return paramiko.PKey.from_path(path)
    except TypeError:  # encrypted, no password given
        pass
    except (ValueError, paramiko.SSHException) as exc:
        raise FetchError(
            FetchFailure.CONFIG, f"private_key {path} is not a usable key: {exc}"
        ) from None
    passphrase = os.environ.get(PASSPHRASE_ENV) or _secret_block(source.passphrase_secret)
    if not passphrase:
        raise FetchError(
            FetchFailure.CONFIG,
            f"private_key {path} is encrypted; set {PASSPHRASE_ENV} in the environment"
            " or name a Prefect Secret block in passphrase_secret",
        )
    try:
        # cryptography wants bytes; paramiko's annotation says str but passes it through.
        return paramiko.PKey.from_path(path, password=passphrase.encode())  # type: ignore[arg-type]
    except (TypeError, ValueError, paramiko.SSHException):
        raise FetchError(
            FetchFailure.CONFIG, f"private_key {path}: {PASSPHRASE_ENV} does not open it"
        ) from None


class RefuseUnknownHost(paramiko.RejectPolicy):
    """RejectPolicy whose refusal says which key was offered and how to pin it."""

    def __init__(self, host: str, port: int, known_hosts: Path) -> None:
        self.host = host
        self.port = port
        self.known_hosts = known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        host, port = self.host, self.port
        raise FetchError(
            FetchFailure.UNKNOWN_HOST,
            f"{host} port {port} is not in {self.known_hosts} (it offered {key.get_name()}"
            f" {key.fingerprint}); refusing an unverified server. Run"
            f" `ssh-keyscan -p {port} {host}`, verify the fingerprint with the server's"
            f" operator out of band, then add that line to {self.known_hosts}",
        )


def host_key_changed(
    host: str, port: int, known_hosts: Path, exc: paramiko.BadHostKeyException
) -> FetchError:
    """The refusal of a server whose host key is not the one ``known_hosts`` pins."""
    pinned = f"[{host}]:{port}" if port != 22 else host
    return FetchError(
        FetchFailure.HOST_KEY_MISMATCH,
        f"the host key of {host} port {port} changed: it offered {exc.key.get_name()}"
        f" {exc.key.fingerprint}, {known_hosts} pins {exc.expected_key.get_name()}"
        f" {exc.expected_key.fingerprint}. Someone may be in the middle, or the server was"
        " re-keyed: fetch nothing until the new fingerprint is confirmed with the server's"
        f" operator out of band, then replace the entry (ssh-keygen -R '{pinned}' -f"
        f" {known_hosts}; ssh-keyscan -p {port} {host})",
    )
