"""Fixtures for the SFTP source: a real OpenSSH server (tests/sshd_server.py) and sources on it."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotlist.config import SourceConfig
from hotlist.sources import sftp
from tests.sshd_server import SshdServer, start_sshd

#: The four upstream files, as one source's feeds.
FEEDS = {"svs": "svs.tbl", "sfr": "sfr.tbl", "slr": "slr.tbl", "ncic": "VEHEXTRT.txt"}

MakeSource = Callable[..., SourceConfig]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def landed(landing: Path) -> list[str]:
    """Everything in the landing area, by name (complete files and leftovers alike)."""
    return sorted(p.name for p in landing.iterdir())


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshdServer]:
    """One sshd for the session; tests that kill or freeze a server use ``own_sshd``."""
    server = start_sshd()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def own_sshd() -> Iterator[SshdServer]:
    """A private sshd this test may kill, freeze or restart."""
    server = start_sshd()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def remote_dir(sshd: SshdServer) -> Path:
    """A fresh directory served by the shared sshd, readable by any local user."""
    path = Path(tempfile.mkdtemp(dir=sshd.root))
    path.chmod(0o755)
    return path


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sftp, "RETRY_PAUSE_S", 0.0)


@pytest.fixture
def make_source(sshd: SshdServer) -> MakeSource:
    """``make_source(remote_dir, server=..., user=..., **SourceConfig fields)``."""

    def make(
        remote: Path,
        *,
        server: SshdServer | None = None,
        user: str | None = None,
        **overrides: Any,
    ) -> SourceConfig:
        srv = server or sshd
        fields: dict[str, Any] = {
            "url": srv.url_for(remote, user=user),
            "layout": "test",
            "files": dict(FEEDS),
            "private_key": srv.client_key,
            "known_hosts": srv.known_hosts,
            "connect_timeout_s": 5.0,
            "read_timeout_s": 5.0,
        }
        fields.update(overrides)
        return SourceConfig.model_validate(fields)

    return make
