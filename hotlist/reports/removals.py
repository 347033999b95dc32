"""Was this plate removed? Answered from keyed hashes: the plate itself is kept nowhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The columns of :func:`removals_of_plate`, in order.
REMOVAL_COLUMNS = ("feed", "list", "record_id", "reason", "detected_at", "purged_at")


def removals_of_plate(data_dir: Path, plate: str, state: str) -> list[dict[str, Any]]:
    """Was this plate removed? Every tombstone of it, oldest first, from keyed hashes.

    The plate itself is not kept anywhere: it is normalized as the lists are and hashed
    under the local key, and the tombstones are matched on that hash. The control
    database is opened read-only.
    """
    from hotlist import normalize
    from hotlist.keyed import PlateHasher
    from hotlist.store.control import read_only

    digest = PlateHasher(data_dir)(normalize.plate_value(plate), normalize.state_value(state))
    with read_only(data_dir) as con:  # waits, bounded and saying so, while a writer runs
        rows = con.execute(
            "SELECT feed, list, record_id, reason, detected_at, purged_at FROM tombstones"
            " WHERE keyed_hash = ? ORDER BY detected_at",
            [digest],
        ).fetchall()
    return [dict(zip(REMOVAL_COLUMNS, row, strict=True)) for row in rows]
