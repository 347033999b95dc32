"""Prefect flow: ingest the CA DOJ CLEW SVS tables (svs.tbl, sfr.tbl, slr.tbl)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows._ingest import run_ingest


@flow(name="ingest-svs", log_prints=False)
def ingest_svs(
    config: str | None = None, approve_mass_removal: str | None = None
) -> dict[str, Any]:
    """Fetch the three CLEW tables and apply each whole or not at all.

    Args:
        config: path of the hotlist TOML configuration (default: HOTLIST_CONFIG).
        approve_mass_removal: SHA-256 of one file allowed past the mass-deletion guard.
    """
    return run_ingest("svs", config, approve_mass_removal)


if __name__ == "__main__":
    ingest_svs()
