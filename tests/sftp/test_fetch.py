"""The SFTP source lands the configured files, verified, against a real OpenSSH server."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import urlparse

import pytest

from hotlist.sources import FetchError, FetchFailure, LandedFile, Unchanged
from hotlist.sources.sftp import fetch_sftp
from tests.sftp.conftest import FEEDS, MakeSource, landed, never_seen, sha256_of
from tests.sshd_server import free_port


def _publish(remote_dir: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (remote_dir / name).write_bytes(data)


def _four_files() -> dict[str, bytes]:
    return {name: os.urandom(3000 + i) for i, name in enumerate(FEEDS.values())}


def test_it_lands_all_four_upstream_files_byte_for_byte(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    """svs.tbl, sfr.tbl, slr.tbl and VEHEXTRT.txt arrive whole, hashed, 0600, no leftovers."""
    files = _four_files()
    _publish(remote_dir, files)

    results = fetch_sftp(make_source(remote_dir), list(FEEDS), landing, never_seen)

    assert [r.feed for r in results] == list(FEEDS)
    for result in results:
        assert isinstance(result, LandedFile)
        data = files[result.name]
        assert result.path == landing / result.name
        assert result.path.read_bytes() == data
        assert result.sha256 == sha256_of(data)
        assert result.size == len(data)
        assert result.mtime == int((remote_dir / result.name).stat().st_mtime)
        assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert landed(landing) == sorted(FEEDS.values())


def test_a_second_run_downloads_nothing_when_every_file_was_seen(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    """Idempotent: same size and mtime as last applied -> Unchanged, nothing downloaded."""
    _publish(remote_dir, _four_files())
    source = make_source(remote_dir)
    first = fetch_sftp(source, list(FEEDS), landing, never_seen)
    applied = {(r.feed, r.name, r.size, r.mtime) for r in first if isinstance(r, LandedFile)}
    for path in landing.iterdir():
        path.unlink()

    second = fetch_sftp(
        source, list(FEEDS), landing, lambda *key: (key[0], key[1], key[2], key[3]) in applied
    )

    assert second == [Unchanged(feed, name) for feed, name in FEEDS.items()]
    assert landed(landing) == []


def test_it_accepts_a_file_that_matches_its_sha256_companion(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    data = os.urandom(5000)
    _publish(
        remote_dir, {"svs.tbl": data, "svs.tbl.sha256": f"{sha256_of(data)}  svs.tbl\n".encode()}
    )

    [result] = fetch_sftp(make_source(remote_dir), ["svs"], landing, never_seen)

    assert isinstance(result, LandedFile)
    assert result.sha256 == sha256_of(data)


def test_it_refuses_a_file_that_does_not_match_its_sha256_companion_and_lands_nothing(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    _publish(remote_dir, {"svs.tbl": b"one", "svs.tbl.sha256": f"{sha256_of(b'two')}\n".encode()})

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(remote_dir), ["svs"], landing, never_seen)

    assert caught.value.kind is FetchFailure.CHECKSUM_MISMATCH
    assert "svs.tbl" in str(caught.value)
    assert landed(landing) == []


def test_a_missing_remote_file_is_not_found_and_the_message_says_where(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    source = make_source(remote_dir)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["ncic"], landing, never_seen)

    message = str(caught.value)
    assert caught.value.kind is FetchFailure.NOT_FOUND
    assert not caught.value.transient
    assert f"{remote_dir}/VEHEXTRT.txt" in message
    assert "127.0.0.1" in message
    assert f"port {urlparse(source.url).port}" in message
    assert landed(landing) == []


@pytest.mark.parametrize(
    "bad_name",
    ["../etc/passwd", "/etc/passwd", "svs\x00.tbl", "..", "sub/svs.tbl"],
    ids=["traversal", "absolute", "nul", "dotdot", "subdirectory"],
)
def test_it_refuses_an_unsafe_configured_name_before_connecting(
    bad_name: str, landing: Path, make_source: MakeSource, remote_dir: Path
) -> None:
    """UNSAFE_NAME is raised before any network use (the URL points at a closed port)."""
    source = make_source(
        remote_dir,
        url=f"sftp://nobody@127.0.0.1:{free_port()}/srv",
        files={"svs": bad_name, "ncic": "VEHEXTRT.txt"},
    )

    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["ncic"], landing, never_seen)

    assert caught.value.kind is FetchFailure.UNSAFE_NAME
    assert "\x00" not in str(caught.value)  # a NUL is shown escaped, never raw
    assert landed(landing) == []


@pytest.mark.parametrize("missing", ["known_hosts", "private_key"])
def test_an_sftp_source_needs_a_pinned_host_key_and_a_client_key(
    remote_dir: Path, make_source: MakeSource, missing: str
) -> None:
    """Refused when the configuration loads, before any connection is tried."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"known_hosts .* and private_key"):
        make_source(remote_dir, **{missing: None})


def test_it_removes_parts_left_by_an_interrupted_run_before_fetching(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    (landing / "old.tbl.part").write_bytes(b"half a file")
    _publish(remote_dir, {"svs.tbl": b"whole"})

    fetch_sftp(make_source(remote_dir), ["svs"], landing, never_seen)

    assert landed(landing) == ["svs.tbl"]
