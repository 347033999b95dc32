"""Verifying nothing is no pass: content in any format is found, what cannot be read is
unverifiable (never clean), leftovers are findings (never tracebacks), and verification
never creates data_dir."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings
from hotlist.verify import verify
from tests.builders import ncic_line

PLATE = "ZQXFMT42"
LINE = ncic_line("F000000042", PLATE)


def _zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _zstd_parquet(path: Path) -> None:
    pl.DataFrame({"plate": ["7KEEP001", PLATE], "n": [1, 2]}).write_parquet(
        path, compression="zstd"
    )


FORMATS: dict[str, Callable[[Path], object]] = {
    "copy.parquet": _zstd_parquet,
    "copy.dat": _zstd_parquet,  # a Parquet file by its bytes, whatever its name
    "extract.txt.xz": lambda p: p.write_bytes(lzma.compress(LINE.encode())),
    "extract.txt.bz2": lambda p: p.write_bytes(bz2.compress(LINE.encode())),
    "extract.txt.gz": lambda p: p.write_bytes(gzip.compress(LINE.encode())),
    "notes-utf16.txt": lambda p: p.write_text(f"seen {PLATE}\n", encoding="utf-16"),
    "notes-utf16be.txt": lambda p: p.write_bytes(f"seen {PLATE}".encode("utf-16-be")),
    "notes-utf32.txt": lambda p: p.write_text(f"seen {PLATE}\n", encoding="utf-32"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_content_in_a_format_verify_decodes_is_found(
    store: Settings, tmp_path: Path, name: str
) -> None:
    elsewhere = tmp_path / "results"
    elsewhere.mkdir()
    FORMATS[name](elsewhere / name)
    result = verify(store.data_dir, None, [PLATE], extra_roots=[elsewhere])
    assert not result.ok
    [finding] = result.findings
    assert finding.place.startswith(str(elsewhere / name))
    assert "content of a removed record" in finding.problem


def test_a_zip_member_holding_content_is_named_even_nested_and_compressed(
    store: Settings, tmp_path: Path
) -> None:
    inner = _zipped({"deep/extract.txt.gz": gzip.compress(LINE.encode())})
    archive = tmp_path / "results" / "bundle.zip"
    archive.parent.mkdir()
    archive.write_bytes(_zipped({"readme.txt": b"nothing", "inner.zip": inner}))
    result = verify(store.data_dir, None, [PLATE], extra_roots=[archive.parent])
    assert [f.place for f in result.findings] == [f"{archive}:inner.zip:deep/extract.txt.gz"]


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("cut.xz", lzma.compress(LINE.encode())[:-20], "cannot be decoded"),
        ("cut.gz", gzip.compress(LINE.encode() * 50)[:40], "cannot be decoded"),
        ("frame.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 64, "zstd-compressed"),
        ("cut.parquet", b"PAR1" + b"\x00" * 64, "cannot be read as Parquet"),
    ],
)
def test_a_file_that_cannot_be_read_is_unverifiable_never_clean(
    store: Settings, tmp_path: Path, name: str, data: bytes, why: str
) -> None:
    elsewhere = tmp_path / "results"
    elsewhere.mkdir()
    (elsewhere / name).write_bytes(data)
    result = verify(store.data_dir, None, [PLATE], extra_roots=[elsewhere])
    [finding] = result.findings
    assert finding.place == str(elsewhere / name)
    assert finding.problem.startswith("unverifiable: ")
    assert why in finding.problem


def test_a_partial_published_version_left_by_a_kill_is_a_finding_not_a_traceback(
    store: Settings,
) -> None:
    partial = store.data_dir / "published" / "v000000009.tmp"
    partial.mkdir(parents=True)
    _zstd_parquet(partial / "hotlist.parquet")
    whole = (partial / "hotlist.parquet").read_bytes()
    (partial / "hotlist.parquet").write_bytes(whole[: len(whole) // 2])
    (partial / "hotlist.csv").write_bytes(b"entry_id,plate\n1,7KE")
    result = verify(store.data_dir, None, [PLATE])
    problems = {(f.place, f.problem) for f in result.findings}
    parquet = str(partial / "hotlist.parquet")
    assert (parquet, "leftover of an interrupted write") in problems
    assert any(p == parquet and w.startswith("unverifiable") for p, w in problems)
    assert (str(partial / "hotlist.csv"), "leftover of an interrupted write") in problems


def test_verify_of_a_data_dir_that_does_not_exist_fails_and_creates_nothing(
    tmp_path: Path,
) -> None:
    config = tmp_path / "hotlist.toml"
    config.write_text('data_dir = "no such dir"\n[sources.ncic]\nurl = "file:///srv/none"\n')
    done = CliRunner().invoke(
        app, ["verify", "-c", str(config)], env={"PREFECT_HOME": str(tmp_path / "home")}
    )
    assert done.exit_code != 0
    assert "does not exist" in done.stderr
    assert "PASS" not in done.stdout
    assert not (tmp_path / "no such dir").exists()
    assert not (tmp_path / "home").exists()
    result = verify(tmp_path / "no such dir", tmp_path / "home", ["ZQXFMT42"])
    assert not result.ok
    assert result.findings[0].problem.startswith("data_dir does not exist")
    assert not (tmp_path / "no such dir").exists()


def test_a_verify_with_nothing_awaiting_purge_says_it_searched_for_no_content(
    tmp_path: Path,
) -> None:
    """A PASS over 0 markers never reads as "every removed record is gone": it says that
    no content was searched for, and where the searches of earlier purges are."""
    from hotlist.verify import verify

    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "notes.txt").write_text("nothing here\n")
    summary = verify(data_dir, None, []).summary()
    assert "0 records awaiting purge searched for" in summary
    assert "no record content was searched for" in summary
