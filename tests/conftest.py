"""Shared fixtures: an isolated data directory, configuration files, upstream drop folders."""

from __future__ import annotations

from collections.abc import Callable
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
