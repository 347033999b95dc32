"""The access log as CSV for auditors, every text cell neutralized (see ``hotlist.csvsafe``)."""

from __future__ import annotations

import datetime as dt
from typing import IO

from hotlist import csvsafe
from hotlist.audit.log import records
from hotlist.audit.where import Where

COLUMNS = [
    "seq", "time", "user", "organization", "purpose", "data_element", "outcome", "channel",
    "client", "hash",
]  # fmt: skip


def export_csv(where: Where, out: IO[str], since: dt.datetime | None = None) -> int:
    """Write the records from ``since`` on as CSV to ``out`` (the file log of a
    ``data_dir``, or the log the settings name); returns how many."""
    return csvsafe.write_rows(out, COLUMNS, records(where, since))
