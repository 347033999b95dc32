"""Trust: the server's host key is pinned, the client proves itself with its key only (CJIS)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hotlist.sources import FetchError, FetchFailure, LandedFile, never_taken
from hotlist.sources.sftp import PASSPHRASE_ENV, fetch_sftp
from tests.sftp.conftest import MakeSource, landed
from tests.sshd_server import (
    LOOPBACK,
    SshdServer,
    fingerprint_of_public_key,
    generate_ed25519_key,
    known_hosts_line,
)


@pytest.fixture
def published(remote_dir: Path) -> Path:
    (remote_dir / "svs.tbl").write_bytes(b"plate records")
    return remote_dir


def test_it_refuses_a_changed_host_key_and_lands_nothing(
    sshd: SshdServer, published: Path, landing: Path, make_source: MakeSource, tmp_path: Path
) -> None:
    """A known_hosts entry for this host:port with another key means someone else answers."""
    impostor = generate_ed25519_key(tmp_path / "other_host_key", "someone-else")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line(sshd.port, impostor))

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(published, known_hosts=known_hosts), ["svs"], landing, never_taken)

    message = str(caught.value)
    assert caught.value.kind is FetchFailure.HOST_KEY_MISMATCH
    assert not caught.value.transient
    assert f"{LOOPBACK} port {sshd.port}" in message
    assert sshd.host_key_fingerprint in message
    assert fingerprint_of_public_key(impostor) in message
    assert "out of band" in message
    assert landed(landing) == []


def test_it_refuses_an_unknown_host_and_says_how_to_pin_it(
    sshd: SshdServer, published: Path, landing: Path, make_source: MakeSource, tmp_path: Path
) -> None:
    """Never trust on first use: a host missing from known_hosts is refused, not learned."""
    known_hosts = tmp_path / "known_hosts"
    other = generate_ed25519_key(tmp_path / "other", "other")
    known_hosts.write_text(known_hosts_line(22, other, host="drop.example.org"))

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(published, known_hosts=known_hosts), ["svs"], landing, never_taken)

    message = str(caught.value)
    assert caught.value.kind is FetchFailure.UNKNOWN_HOST
    assert f"{LOOPBACK} port {sshd.port}" in message
    assert sshd.host_key_fingerprint in message
    assert f"ssh-keyscan -p {sshd.port} {LOOPBACK}" in message
    assert known_hosts.read_text() == known_hosts_line(22, other, host="drop.example.org")
    assert landed(landing) == []


@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed"])
def test_a_known_hosts_line_from_ssh_keyscan_is_accepted(
    hashed: bool,
    sshd: SshdServer,
    published: Path,
    landing: Path,
    make_source: MakeSource,
    tmp_path: Path,
) -> None:
    """The fix the refusal message suggests works, [host]:port and hashed (-H) forms alike."""
    keyscan = subprocess.run(
        [
            "ssh-keyscan",
            *(["-H"] if hashed else []),
            "-t",
            "ed25519",
            "-p",
            str(sshd.port),
            LOOPBACK,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(keyscan.stdout)

    [result] = fetch_sftp(
        make_source(published, known_hosts=known_hosts), ["svs"], landing, never_taken
    )

    assert isinstance(result, LandedFile)


def test_a_client_key_the_server_does_not_know_is_auth_refused(
    published: Path, landing: Path, make_source: MakeSource, tmp_path: Path
) -> None:
    stranger = tmp_path / "id_stranger"
    generate_ed25519_key(stranger, "stranger")

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(published, private_key=stranger), ["svs"], landing, never_taken)

    message = str(caught.value)
    assert caught.value.kind is FetchFailure.AUTH_REFUSED
    assert not caught.value.transient
    assert str(stranger) in message
    assert "authorize" in message
    assert landed(landing) == []


def test_an_rsa_client_key_works_too(
    sshd: SshdServer, published: Path, landing: Path, make_source: MakeSource, tmp_path: Path
) -> None:
    key = tmp_path / "id_rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    sshd.authorize(key.with_suffix(".pub").read_text())

    [result] = fetch_sftp(make_source(published, private_key=key), ["svs"], landing, never_taken)

    assert isinstance(result, LandedFile)


def test_an_encrypted_key_is_opened_with_the_passphrase_from_the_environment_only(
    sshd: SshdServer,
    published: Path,
    landing: Path,
    make_source: MakeSource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = tmp_path / "id_locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "correct horse", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    sshd.authorize(key.with_suffix(".pub").read_text())
    source = make_source(published, private_key=key)

    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["svs"], landing, never_taken)
    assert caught.value.kind is FetchFailure.CONFIG
    assert PASSPHRASE_ENV in str(caught.value)

    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["svs"], landing, never_taken)
    assert caught.value.kind is FetchFailure.CONFIG
    assert "wrong" not in str(caught.value)

    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    [result] = fetch_sftp(source, ["svs"], landing, never_taken)
    assert isinstance(result, LandedFile)


def test_a_private_key_readable_by_others_is_refused(
    sshd: SshdServer, published: Path, landing: Path, make_source: MakeSource, tmp_path: Path
) -> None:
    """Like OpenSSH: a key others can read is no longer only ours."""
    key = tmp_path / "id_loose"
    key.write_bytes(sshd.client_key.read_bytes())
    key.chmod(0o644)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(published, private_key=key), ["svs"], landing, never_taken)

    assert caught.value.kind is FetchFailure.CONFIG
    assert "chmod 600" in str(caught.value)
