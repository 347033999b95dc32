"""What a purge run adds to its verification before anything is marked purged: records
whose content can no longer be searched for, and the raw device holding ``data_dir``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from hotlist.markers import Markers
from hotlist.verify import Verification


def unsearchable(
    verification: Verification, gone: pl.DataFrame, markers: Markers, unreadable: list[Path]
) -> None:
    """Records awaiting purge whose content no file holds any more: a verification cannot
    search for them, so it cannot pass (it would be vacuous)."""
    missing = gone.filter(~pl.col("entry_id").is_in(list(markers.found)))
    for feed, count in missing.group_by("feed").len().sort("feed").iter_rows():
        verification.add(
            f"feed {feed}",
            f"{count} records awaiting purge cannot be searched for: no superseded content"
            " file holds them any more (erased before a purge verified them), so no"
            " verification can show their content is gone; they stay pending",
        )
    for path in unreadable:
        verification.add(path, "unverifiable: a superseded content file the purge reads its"
                         " markers from cannot be read")  # fmt: skip


def scan_raw_device(
    verification: Verification, device: Path, plates: list[str], keep: list[Path], data_dir: Path
) -> None:
    """Search the device under data_dir for the plates, outside the files that may hold
    them at this moment: the markers' source (scrubbed next) and the access log (which
    keeps queried plates by law, and is verified field by field). The text of the schemas
    of the SQLite databases under ``data_dir`` is no finding there, as in their files."""
    from hotlist.raw_device import excluded_ranges, scan_device, schemas_under

    try:
        hits = scan_device(device, plates, excluded_ranges(keep), schemas_under(data_dir))
    except OSError as exc:
        verification.add(device, f"unverifiable: cannot be read ({exc.strerror})")
        return
    if hits:
        first = ", ".join(str(h.offset) for h in hits[:10])
        verification.add(
            device,
            f"raw blocks hold content of a removed record at {len(hits)} offsets"
            f" (first: {first}): a file deleted without scrubbing, or a copy outside data_dir",
        )
