"""Shared fixtures: an isolated data directory, configuration files, upstream drop folders."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotlist.config import Settings, load_settings
from hotlist.ingest import ingest_source
from tests.builders import Drop, ncic_file, ncic_line

pytest_plugins = ["tests.real_components", "tests.pg_server"]


@pytest.fixture
def drop(tmp_path: Path) -> Drop:
    return Drop(tmp_path / "drop")


@pytest.fixture
def make_settings(tmp_path: Path, drop: Drop) -> Callable[..., Settings]:
    """Write a configuration file for a data dir under tmp_path and load it."""

    def make(ncic: str = "", *, svs: str = "", layout: str = "ncic-fixed") -> Settings:
        config = tmp_path / "hotlist.toml"
        config.write_text(
            f"""
data_dir = "data"
[sources.svs]
url = "file://{drop.root}"
{svs}
[sources.ncic]
url = "file://{drop.root}"
layout = "{layout}"
{ncic}
"""
        )
        return load_settings(config, environ={})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings, drop: Drop) -> Settings:
    """A data directory holding one ingested NCIC version of one line (plate 7KEEP001)."""
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7KEEP001")]))
    ingest_source(settings, "ncic")
    return settings


@pytest.fixture(autouse=True)
def _no_prefect_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a Prefect API they did not start themselves."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("HOTLIST_CONFIG", raising=False)


@pytest.fixture
def relaxed(make_settings: Callable[..., Settings]) -> Settings:
    """NCIC guards loose enough for hand-written files that remove a share of their lines."""
    return make_settings("guards = {max_removal_share = 0.5}")


def _cannot(reason: str) -> None:
    """A test needing what this machine lacks: skipped, saying why; under CI=true, failed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot run here: {reason}")
    pytest.skip(reason)


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An ext4 filesystem in a 160 MB image file, loop-mounted; yields (mount point, image)."""
    if os.geteuid() != 0:
        _cannot("mounting a loop device needs root")
    if not shutil.which("mkfs.ext4") or not shutil.which("mount"):
        _cannot("mkfs.ext4 or mount is not installed")
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    with open(image, "wb") as fh:
        fh.truncate(160 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        _cannot(f"mount -o loop failed: {done.stderr.strip()}")
    try:
        yield mount, image
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.fixture
def on_device(ext4: tuple[Path, Path], drop: Drop) -> tuple[Settings, Path]:
    """A store on the ext4 image whose purges search that image (``[purge] raw_device``),
    its NCIC source the drop folder with relaxed guards; returns (settings, image)."""
    mount, image = ext4
    config = mount / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[purge]\nraw_device = "{image}"\n'
        f'[sources.ncic]\nurl = "file://{drop.root}"\nguards = {{max_removal_share = 0.5}}\n'
    )
    return load_settings(config, environ={}), image


@pytest.fixture
def prefect_db(tmp_path: Path) -> Iterator[Path]:
    """A real Prefect API; yields the directory of its database (which the harness keeps
    outside PREFECT_HOME; in a deployment it is PREFECT_HOME, which every purge searches)."""
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path / "prefect-home"
    with (
        prefect.settings.temporary_settings(updates={prefect.settings.PREFECT_HOME: home}),
        prefect_test_harness(server_startup_timeout=240),
    ):
        url = prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
        yield Path(url.split("///", 1)[1]).parent
