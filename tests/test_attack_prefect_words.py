"""A removed vanity plate that spells a word Prefect writes into its own database for
every flow run (``RUNNING``): every purge that searches ``PREFECT_HOME`` fails, for good.

Left open (docs/inventory.md, "Words of a SQLite schema"): Prefect's database holds such
words as values (state types, its block types' descriptions), not as schema text, and
leaving them out soundly needs that database read record by record. This test records
the break against a real Prefect API; it is expected to fail until that reader exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hotlist.config import load_settings
from hotlist.ingest import ingest_source
from hotlist.purge import PurgeIncomplete, purge
from tests.builders import Drop, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]


def test_a_removed_vanity_plate_running_does_not_fail_every_purge(
    prefect_db: Path, drop: Drop, tmp_path: Path
) -> None:
    from flows.ingest_then_purge import ingest_then_purge

    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.ncic]\nurl = "file://{drop.root}"\n'
        "guards = {max_removal_share = 0.5}\n"
    )
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000007", "RUNNING")]))
    _, purged = ingest_then_purge("ncic", str(config))  # flow runs: Prefect writes RUNNING
    assert purged is not None and purged.result()["verified"] is True
    assert any(b"RUNNING" in p.read_bytes() for p in prefect_db.iterdir() if p.is_file())
    settings = load_settings(config, environ={})
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")
    result = purge(settings, prefect_db)
    assert result.verification.ok and result.purged == 1


def test_a_plate_a_flow_wrote_into_a_log_line_is_still_found_in_prefects_database(
    prefect_db: Path, drop: Drop, tmp_path: Path
) -> None:
    """Prefect's state types are passed over only where they are state types: the same
    word in a log line a flow wrote is a copy of the plate, and the purge names it."""
    from prefect import flow, get_run_logger
    from prefect.logging.handlers import APILogWorker

    @flow
    def careless() -> None:
        get_run_logger().info("stopped RUNNING at the gate")

    careless()
    APILogWorker.drain_all()
    held = b"".join(p.read_bytes() for p in prefect_db.iterdir() if p.is_file())
    assert b"stopped RUNNING at the gate" in held

    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.ncic]\nurl = "file://{drop.root}"\n'
        "guards = {max_removal_share = 0.5}\n"
    )
    settings = load_settings(config, environ={})
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000007", "RUNNING")]))
    ingest_source(settings, "ncic")
    purge(settings, prefect_db)
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")
    with pytest.raises(PurgeIncomplete) as raised:
        purge(settings, prefect_db)
    places = [f.place for f in raised.value.verification.findings]
    assert places and all("prefect" in place for place in places), places
