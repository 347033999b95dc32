"""Set-up shared by the command-line tests: a loaded store and its configuration file."""

from __future__ import annotations

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from tests.builders import Drop, clew_file, clew_line, ncic_file, ncic_line
from tests.stamps import stamp


def clew_header(hours_ago: float) -> str:
    """A CLEW header line dated ``hours_ago`` hours before now (upstream's time)."""
    s = stamp(hours_ago)
    return f"DATE{s[4:6]}/{s[6:8]}/{s[0:4]} {s[8:10]}:{s[10:12]}"


def load_sample(settings: Settings, drop: Drop) -> Settings:
    """Both sources applied once, from extracts an hour old (fresh): 7ABC123 is a hit in
    the NCIC extract and in the SVS."""
    drop.put(
        "VEHEXTRT.txt",
        ncic_file(
            [ncic_line("V000000001", "7ABC123"), ncic_line("P000000002", "7ABC123", "NV")],
            stamp=stamp(1),
        ),
    )
    header = clew_header(1)
    drop.put("svs.tbl", clew_file([clew_line("7ABC123")], header=header))
    drop.put("sfr.tbl", clew_file([clew_line("5FEL555")], header=header))
    drop.put("slr.tbl", clew_file([clew_line("4PLT444")], header=header))
    ingest_source(settings, "ncic")
    ingest_source(settings, "svs")
    return settings


def config_of(settings: Settings) -> str:
    """The configuration file the ``settings`` fixture was loaded from."""
    return str(settings.data_dir.parent / "hotlist.toml")
