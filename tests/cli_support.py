"""Set-up shared by the command-line tests: a loaded store and its configuration file."""

from __future__ import annotations

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line


def load_sample(settings: Settings, drop: Drop) -> Settings:
    """Both sources applied once: 7ABC123 is a hit in the NCIC extract and in the SVS."""
    drop.put(
        "VEHEXTRT.txt",
        ncic_file([ncic_line("V000000001", "7ABC123"), ncic_line("P000000002", "7ABC123", "NV")]),
    )
    drop.put("svs.tbl", clew_file([clew_line("7ABC123")]))
    drop.put("sfr.tbl", clew_file([clew_line("5FEL555")]))
    drop.put("slr.tbl", clew_file([clew_line("4PLT444")]))
    ingest_source(settings, "ncic")
    ingest_source(settings, "svs")
    return settings


def config_of(settings: Settings) -> str:
    """The configuration file the ``settings`` fixture was loaded from."""
    return str(settings.data_dir.parent / "hotlist.toml")
