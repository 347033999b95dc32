"""Failures are classified, say where and what to do, and never leave a partial file behind."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from hotlist.sources import FetchError, FetchFailure, LandedFile, never_taken, sftp
from hotlist.sources.sftp import fetch_sftp
from tests.sftp.conftest import MakeSource, landed, sha256_of
from tests.sshd_server import LOOPBACK, SshdServer, require_unprivileged_user

_BIG = 64 * 1024 * 1024  # large enough to catch the transfer in the middle


def _when_part_grows(landing: Path, name: str, action: Callable[[], None]) -> threading.Event:
    """Run ``action`` once ``<name>.part`` holds 1 MiB (the transfer is under way)."""
    done = threading.Event()
    part = landing / f"{name}.part"

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if part.stat().st_size >= 1 << 20:
                    action()
                    done.set()
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.001)

    threading.Thread(target=watch, daemon=True).start()
    return done


def test_a_file_the_server_may_not_read_is_permission_denied(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    """Real EACCES from sshd: the file is chmod 000 and sshd logs the session in as an
    unprivileged account (``nobody`` when the tests run as root, since root ignores file
    modes; the current user otherwise). sshd's internal-sftp then opens the file with that
    account's rights and answers SSH_FX_PERMISSION_DENIED. The served directory is 0755 and
    sshd's authorized_keys 0644 so that account can log in at all."""
    user = require_unprivileged_user()
    secret = remote_dir / "VEHEXTRT.txt"
    secret.write_bytes(b"records")
    secret.chmod(0o000)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(remote_dir, user=user), ["ncic"], landing, never_taken)

    message = str(caught.value)
    assert caught.value.kind is FetchFailure.PERMISSION_DENIED
    assert not caught.value.transient
    assert str(secret) in message
    assert user in message
    assert landed(landing) == []


def test_a_server_killed_mid_transfer_is_a_transient_drop_and_the_next_run_completes(
    own_sshd: SshdServer, landing: Path, make_source: MakeSource
) -> None:
    """sshd and its session are SIGKILLed while the file streams: the run fails with
    CONNECTION_DROPPED (worth a retry), keeps no partial file; after a restart a second run
    lands the whole file."""
    data = os.urandom(_BIG)
    (own_sshd.root / "VEHEXTRT.txt").write_bytes(data)
    source = make_source(own_sshd.root, server=own_sshd)
    killed = _when_part_grows(landing, "VEHEXTRT.txt", own_sshd.kill)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["ncic"], landing, never_taken)

    assert killed.wait(10)
    assert caught.value.kind is FetchFailure.CONNECTION_DROPPED
    assert caught.value.transient
    assert f"port {own_sshd.port}" in str(caught.value)
    assert landed(landing) == []

    own_sshd.restart()
    [result] = fetch_sftp(source, ["ncic"], landing, never_taken)

    assert isinstance(result, LandedFile)
    assert result.sha256 == sha256_of(data)
    assert landed(landing) == ["VEHEXTRT.txt"]


def test_a_server_that_stops_answering_mid_transfer_times_out(
    own_sshd: SshdServer, landing: Path, make_source: MakeSource
) -> None:
    """sshd is frozen (SIGSTOP) mid-stream: the connection stays up but silent, so the read
    timeout fires: TIMEOUT, transient, nothing kept."""
    (own_sshd.root / "VEHEXTRT.txt").write_bytes(os.urandom(_BIG))
    source = make_source(own_sshd.root, server=own_sshd, read_timeout_s=1.0)
    frozen = _when_part_grows(landing, "VEHEXTRT.txt", own_sshd.freeze)

    started = time.monotonic()
    try:
        with pytest.raises(FetchError) as caught:
            fetch_sftp(source, ["ncic"], landing, never_taken)
    finally:
        own_sshd.thaw()

    assert frozen.wait(10)
    assert caught.value.kind is FetchFailure.TIMEOUT
    assert caught.value.transient
    assert time.monotonic() - started < 10
    assert landed(landing) == []


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (no SSH banner)."""
    server = socket.create_server((LOOPBACK, 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                accepted.append(server.accept()[0])
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for conn in accepted:
            conn.close()


def test_a_server_that_never_sends_its_banner_times_out(
    silent_listener: int, remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    source = make_source(
        remote_dir, url=f"sftp://me@{LOOPBACK}:{silent_listener}/srv", connect_timeout_s=0.5
    )

    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["svs"], landing, never_taken)

    assert caught.value.kind is FetchFailure.TIMEOUT
    assert f"port {silent_listener}" in str(caught.value)


def test_a_frozen_server_before_its_banner_logs_no_traceback_and_says_what_happened(
    silent_listener: int,
    remote_dir: Path,
    landing: Path,
    make_source: MakeSource,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """paramiko's transport thread logs the failed handshake as ERROR lines and a
    traceback; with logging configured (as under Prefect) none of it reaches the logs."""
    caplog.set_level(logging.DEBUG)
    source = make_source(
        remote_dir, url=f"sftp://me@{LOOPBACK}:{silent_listener}/srv", connect_timeout_s=0.5
    )

    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["svs"], landing, never_taken)

    assert "accepted the connection but sent no SSH banner within 0.5 s" in str(caught.value)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any("Traceback" in r.getMessage() for r in caplog.records)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception (client)" not in err


def test_a_server_that_is_down_is_a_transient_connection_failure(
    own_sshd: SshdServer, landing: Path, make_source: MakeSource
) -> None:
    source = make_source(own_sshd.root, server=own_sshd)
    own_sshd.stop()

    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["svs"], landing, never_taken)

    assert caught.value.kind is FetchFailure.CONNECTION_DROPPED
    assert caught.value.transient
    assert f"{LOOPBACK} port {own_sshd.port}" in str(caught.value)


def _replace_after_each_download(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[int], None]
) -> list[int]:
    """Call ``change(n)`` right after the n-th download, before the fetcher re-stats."""
    calls: list[int] = []
    real = sftp._download

    def download(
        client: paramiko.SFTPClient, remote: str, size: int, part: Path
    ) -> tuple[str, int]:
        result = real(client, remote, size, part)
        calls.append(len(calls) + 1)
        change(len(calls))
        return result

    monkeypatch.setattr(sftp, "_download", download)
    return calls


def test_a_file_replaced_while_it_is_read_is_downloaded_again(
    remote_dir: Path, landing: Path, make_source: MakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream swaps in a new file during the first download: the first copy is thrown
    away and the new file is what lands."""
    target = remote_dir / "VEHEXTRT.txt"
    target.write_bytes(b"old extract " * 1000)
    new = b"new extract, longer " * 1000

    def replace(n: int) -> None:
        if n == 1:
            staged = remote_dir / "VEHEXTRT.txt.new"
            staged.write_bytes(new)
            os.replace(staged, target)

    calls = _replace_after_each_download(monkeypatch, replace)

    [result] = fetch_sftp(make_source(remote_dir), ["ncic"], landing, never_taken)

    assert calls == [1, 2]
    assert isinstance(result, LandedFile)
    assert result.sha256 == sha256_of(new)
    assert result.size == len(new)
    assert landed(landing) == ["VEHEXTRT.txt"]


def test_a_file_that_keeps_changing_is_refused_as_changed_while_read(
    remote_dir: Path, landing: Path, make_source: MakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its mtime moves during every download: after ATTEMPTS tries, CHANGED_WHILE_READ
    (transient), and nothing is left in the landing area."""
    target = remote_dir / "VEHEXTRT.txt"
    target.write_bytes(b"still being written")
    start = int(time.time()) - 1000

    def touch(n: int) -> None:
        os.utime(target, (start + 10 * n, start + 10 * n))

    calls = _replace_after_each_download(monkeypatch, touch)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(remote_dir), ["ncic"], landing, never_taken)

    assert len(calls) == sftp.ATTEMPTS
    assert caught.value.kind is FetchFailure.CHANGED_WHILE_READ
    assert caught.value.transient
    assert landed(landing) == []
