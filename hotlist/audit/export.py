"""The access log as CSV for auditors, every text cell neutralized (see ``hotlist.csvsafe``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import IO

from hotlist import csvsafe
from hotlist.audit.chain import records

COLUMNS = [
    "seq", "time", "user", "organization", "purpose", "data_element", "outcome", "channel",
    "client", "hash",
]  # fmt: skip


def export_csv(data_dir: Path, out: IO[str], since: dt.datetime | None = None) -> int:
    """Write the records from ``since`` on as CSV to ``out``; returns how many."""
    return csvsafe.write_rows(out, COLUMNS, records(data_dir, since))
