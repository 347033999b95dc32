"""The columns the parser produces and the store keeps: one place both sides import.

The parser (:mod:`hotlist.parse`) builds candidate entries and issues with these columns;
the store (:mod:`hotlist.store`) writes, copies and compares them. Neither side imports
the other for them.
"""

from __future__ import annotations

import polars as pl

#: One issue of a line: where (line, field), what (rule), and how bad (error or warning).
ISSUE_SCHEMA = {"line_no": pl.Int64, "field": pl.String, "rule": pl.String, "severity": pl.String}

#: Columns of a candidate entry, in store order (entry ids are given at apply time).
ENTRY_COLUMNS = (
    "feed",
    "list",
    "record_id",
    "ori",
    "record_date",
    "plate",
    "plate_raw",
    "state",
    "state_raw",
    "county",
    "plate_year",
    "plate_type",
    "vehicle_year",
    "make",
    "model",
    "style",
    "colour",
    "line_no",
)

#: Columns compared to decide that an entry changed (everything but its feed and position).
CONTENT_COLUMNS = tuple(c for c in ENTRY_COLUMNS if c not in ("feed", "line_no"))

#: The two BIGINT columns of a line key, as a content file's entries hold them.
LINE_KEY_COLUMNS = ("line_key_hi", "line_key_lo")
