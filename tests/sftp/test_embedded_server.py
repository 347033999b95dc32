"""The embedded demo SFTP server: pinned host key, one client key, one directory, read-only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import paramiko
import pytest

from hotlist.config import SourceConfig
from hotlist.sources import FetchError, FetchFailure, LandedFile, never_taken
from hotlist.sources.sftp import fetch_sftp
from hotlist.sources.sftp_server import EmbeddedSftp, serve_directory, write_ed25519_key
from tests.sftp.conftest import FEEDS, landed, sha256_of


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "drop"
    root.mkdir()
    return root


@pytest.fixture
def demo(served: Path, tmp_path: Path) -> Iterator[EmbeddedSftp]:
    with serve_directory(served, tmp_path / "demo-keys") as server:
        yield server


def _source(demo: EmbeddedSftp, **overrides: object) -> SourceConfig:
    fields: dict[str, object] = {
        "url": demo.url,
        "layout": "test",
        "files": dict(FEEDS),
        "private_key": demo.private_key,
        "known_hosts": demo.known_hosts,
        "connect_timeout_s": 5.0,
        "read_timeout_s": 5.0,
    }
    return SourceConfig.model_validate({**fields, **overrides})


def test_fetch_sftp_lands_all_four_files_from_the_embedded_server(
    demo: EmbeddedSftp, served: Path, landing: Path
) -> None:
    files = {name: os.urandom(10_000 + i) for i, name in enumerate(FEEDS.values())}
    for name, data in files.items():
        (served / name).write_bytes(data)

    results = fetch_sftp(_source(demo), list(FEEDS), landing, never_taken)

    assert [r.feed for r in results] == list(FEEDS)
    for result in results:
        assert isinstance(result, LandedFile)
        assert result.sha256 == sha256_of(files[result.name])
    assert landed(landing) == sorted(FEEDS.values())


def test_it_listens_on_loopback_with_run_time_keys_that_only_its_owner_can_read(
    demo: EmbeddedSftp,
) -> None:
    url = urlparse(demo.url)
    assert (url.scheme, url.username, url.hostname, url.path) == ("sftp", "demo", "127.0.0.1", "/")
    assert url.port
    assert f"[127.0.0.1]:{url.port} ssh-ed25519 " in demo.known_hosts.read_text()
    for path in (demo.private_key, demo.known_hosts):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_its_keys_are_gone_when_it_stops(served: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "demo-keys"
    with serve_directory(served, workdir) as demo:
        assert demo.private_key.exists()

    assert list(workdir.iterdir()) == []


def test_it_accepts_no_other_client_key(
    demo: EmbeddedSftp, served: Path, landing: Path, tmp_path: Path
) -> None:
    (served / "svs.tbl").write_bytes(b"x")
    stranger = tmp_path / "stranger"
    write_ed25519_key(stranger)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(_source(demo, private_key=stranger), ["svs"], landing, never_taken)

    assert caught.value.kind is FetchFailure.AUTH_REFUSED
    assert landed(landing) == []


def test_it_refuses_every_change_to_the_served_directory(demo: EmbeddedSftp, served: Path) -> None:
    (served / "svs.tbl").write_bytes(b"x")
    url = urlparse(demo.url)
    client = paramiko.SSHClient()
    client.get_host_keys().load(str(demo.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        url.port or 22,
        username="demo",
        key_filename=str(demo.private_key),
        allow_agent=False,
        look_for_keys=False,
    )
    try:
        sftp = client.open_sftp()
        assert sftp.listdir("/") == ["svs.tbl"]
        with pytest.raises(PermissionError):
            sftp.open("/new.tbl", "wb")
        with pytest.raises(PermissionError):
            sftp.open("/svs.tbl", "r+")
        with pytest.raises(PermissionError):
            sftp.remove("/svs.tbl")
        with pytest.raises(PermissionError):
            sftp.rename("/svs.tbl", "/other.tbl")
        with pytest.raises(PermissionError):
            sftp.mkdir("/sub")
    finally:
        client.close()
    assert sorted(p.name for p in served.iterdir()) == ["svs.tbl"]
    assert (served / "svs.tbl").read_bytes() == b"x"


def test_a_symlink_out_of_the_served_directory_is_permission_denied(
    demo: EmbeddedSftp, served: Path, landing: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not for the demo")
    (served / "VEHEXTRT.txt").symlink_to(outside)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(_source(demo), ["ncic"], landing, never_taken)

    assert caught.value.kind is FetchFailure.PERMISSION_DENIED
    assert landed(landing) == []
