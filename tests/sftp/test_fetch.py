"""The SFTP source lands the configured files, verified, against a real OpenSSH server."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest

from hotlist.sources import FetchError, FetchFailure, LandedFile, Taken, Unchanged, never_taken
from hotlist.sources.sftp import fetch_sftp
from tests.sftp.conftest import FEEDS, MakeSource, landed, sha256_of
from tests.sshd_server import free_port, require_unprivileged_user


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

    results = fetch_sftp(make_source(remote_dir), list(FEEDS), landing, never_taken)

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


def _taken(results: list[LandedFile | Unchanged]) -> dict[str, Taken]:
    return {r.feed: Taken(r.name, r.sha256) for r in results if isinstance(r, LandedFile)}


def test_a_file_with_the_content_taken_last_comes_back_unchanged_and_lands_nothing(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    """Idempotent: same sha256 as the file taken last -> Unchanged, no landing copy."""
    _publish(remote_dir, _four_files())
    source = make_source(remote_dir)
    taken = _taken(fetch_sftp(source, list(FEEDS), landing, never_taken))
    for path in landing.iterdir():
        path.unlink()

    second = fetch_sftp(source, list(FEEDS), landing, taken.get)

    assert second == [Unchanged(feed, name) for feed, name in FEEDS.items()]
    assert landed(landing) == []


def test_a_file_changed_at_the_same_size_and_mtime_is_fetched_again(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    """Size and mtime never decide "unchanged": a rewrite that keeps both still lands."""
    path = remote_dir / "VEHEXTRT.txt"
    path.write_bytes(b"V0001 7ABC123\n")
    before = path.stat()
    source = make_source(remote_dir)
    taken = _taken(fetch_sftp(source, ["ncic"], landing, never_taken))
    (landing / "VEHEXTRT.txt").unlink()
    path.write_bytes(b"V0001 7ABC124\n")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime

    [again] = fetch_sftp(source, ["ncic"], landing, taken.get)

    assert isinstance(again, LandedFile)
    assert again.path.read_bytes() == b"V0001 7ABC124\n"


def test_a_companion_naming_the_file_taken_last_skips_the_download(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    """With a ``.sha256`` companion, an unchanged file is known without reading it: here
    the file itself is unreadable, so a download would fail."""
    data = os.urandom(4000)
    _publish(remote_dir, {"svs.tbl": data, "svs.tbl.sha256": f"{sha256_of(data)}\n".encode()})
    source = make_source(remote_dir, user=require_unprivileged_user())
    (remote_dir / "svs.tbl").chmod(0o644)
    (remote_dir / "svs.tbl.sha256").chmod(0o644)
    taken = _taken(fetch_sftp(source, ["svs"], landing, never_taken))
    (landing / "svs.tbl").unlink()
    (remote_dir / "svs.tbl").chmod(0o000)

    assert fetch_sftp(source, ["svs"], landing, taken.get) == [Unchanged("svs", "svs.tbl")]
    assert landed(landing) == []


def test_a_file_cut_at_a_line_boundary_is_refused_by_its_companion(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    whole = b"".join(b"V%09d 7ABC%03d\n" % (i, i) for i in range(100))
    cut = whole[: whole.index(b"V000000097")]  # ends cleanly on a newline
    _publish(remote_dir, {"VEHEXTRT.txt": cut, "VEHEXTRT.txt.sha256": sha256_of(whole).encode()})

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(remote_dir), ["ncic"], landing, never_taken)

    assert caught.value.kind is FetchFailure.CHECKSUM_MISMATCH
    assert landed(landing) == []


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: p.mkdir(), "a directory"),
        (lambda p: os.mkfifo(p), "a FIFO (named pipe)"),
    ],
    ids=["directory", "fifo"],
)
def test_a_symbolic_link_to_something_not_a_file_is_named_for_what_it_is(
    remote_dir: Path,
    landing: Path,
    make_source: MakeSource,
    make: Callable[[Path], None],
    kind: str,
) -> None:
    target = remote_dir / "target"
    make(target)
    (remote_dir / "VEHEXTRT.txt").symlink_to(target)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(remote_dir), ["ncic"], landing, never_taken)

    assert caught.value.kind is FetchFailure.NOT_A_FILE
    assert f"is {kind} (through a symbolic link), not a regular file" in str(caught.value)
    assert "does not exist" not in str(caught.value)
    assert landed(landing) == []


def test_a_symbolic_link_to_a_device_is_named_for_what_it_is(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    (remote_dir / "VEHEXTRT.txt").symlink_to("/dev/null")

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(remote_dir), ["ncic"], landing, never_taken)

    assert caught.value.kind is FetchFailure.NOT_A_FILE
    assert "is a character device (through a symbolic link)" in str(caught.value)


def test_a_dangling_symbolic_link_is_named_as_one(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    (remote_dir / "VEHEXTRT.txt").symlink_to(remote_dir / "gone")

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(remote_dir), ["ncic"], landing, never_taken)

    assert caught.value.kind is FetchFailure.NOT_FOUND
    assert "is a symbolic link whose target does not exist" in str(caught.value)


def test_it_accepts_a_file_that_matches_its_sha256_companion(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    data = os.urandom(5000)
    _publish(
        remote_dir, {"svs.tbl": data, "svs.tbl.sha256": f"{sha256_of(data)}  svs.tbl\n".encode()}
    )

    [result] = fetch_sftp(make_source(remote_dir), ["svs"], landing, never_taken)

    assert isinstance(result, LandedFile)
    assert result.sha256 == sha256_of(data)


def test_it_refuses_a_file_that_does_not_match_its_sha256_companion_and_lands_nothing(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    _publish(remote_dir, {"svs.tbl": b"one", "svs.tbl.sha256": f"{sha256_of(b'two')}\n".encode()})

    with pytest.raises(FetchError) as caught:
        fetch_sftp(make_source(remote_dir), ["svs"], landing, never_taken)

    assert caught.value.kind is FetchFailure.CHECKSUM_MISMATCH
    assert "svs.tbl" in str(caught.value)
    assert landed(landing) == []


def test_a_missing_remote_file_is_not_found_and_the_message_says_where(
    remote_dir: Path, landing: Path, make_source: MakeSource
) -> None:
    source = make_source(remote_dir)

    with pytest.raises(FetchError) as caught:
        fetch_sftp(source, ["ncic"], landing, never_taken)

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
        fetch_sftp(source, ["ncic"], landing, never_taken)

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

    fetch_sftp(make_source(remote_dir), ["svs"], landing, never_taken)

    assert landed(landing) == ["svs.tbl"]
