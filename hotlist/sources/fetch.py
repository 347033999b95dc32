"""Fetch a configured source's files, by the scheme of its URL."""

from __future__ import annotations

from pathlib import Path

from hotlist.config import SourceConfig
from hotlist.sources import LandedFile, LastTaken, Unchanged
from hotlist.sources.landing import landing_dir


def fetch(
    source_name: str,
    source: SourceConfig,
    feeds: list[str],
    data_dir: Path,
    last_taken: LastTaken,
) -> list[LandedFile | Unchanged]:
    """Fetch ``feeds`` of a configured source into ``data_dir/landing/<source_name>``."""
    landing = landing_dir(data_dir, source_name)
    if source.url.startswith("file://"):
        from hotlist.sources.local import fetch_local

        return fetch_local(source, feeds, landing, last_taken)
    if source.url.startswith("https://"):
        from hotlist.sources.https import fetch_https  # httpx only for https:// sources

        validators = data_dir / "http-validators" / f"{source_name}.json"
        return fetch_https(source, feeds, landing, last_taken, validators)
    from hotlist.sources.sftp import fetch_sftp  # paramiko only for sftp:// sources

    return fetch_sftp(source, feeds, landing, last_taken)
