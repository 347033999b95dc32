"""A quarantined row: its columns, the keyed hash that stands for its line, and the
identity it still carries (so the entry's previous version stays)."""

from __future__ import annotations

import hashlib
import hmac

import polars as pl
import polars_hash as plh

from hotlist import normalize as norm
from hotlist.codes import codes
from hotlist.layout import Layout

#: Columns of a quarantined row. ``raw_line`` is null for a line that is not positively
#: of an allowed hit type: of such a line only its number, rules and keyed hash are kept.
QUARANTINE_SCHEMA = pl.Schema(
    {
        "line_no": pl.Int64(),
        "raw_line": pl.String(),
        "rules": pl.String(),
        "carry_record_id": pl.String(),
        "carry_plate": pl.String(),
        "carry_state": pl.String(),
        "line_hash": pl.String(),
    }
)
#: The rule of a line whose hit type is none of the file's allowed ones, nor a known one.
UNKNOWN_HIT_TYPE = "record_id.hit_type_unknown"
#: Identity columns a quarantined row may carry (``carry_record_id`` ...).
CARRIED = ("record_id", "plate", "state")


def quarantine_line_hash(key: bytes | None, text: pl.Expr | None = None) -> pl.Expr:
    """``line_hash``: HMAC-SHA256 of a line's text (as read, without its line end), keyed
    by the hex text of HMAC-SHA256(local key, "quarantined-line"); null without a key.

    Whoever holds the key and a line of the upstream file can tell whether this is the
    line quarantined; without the key the hash says nothing of it.
    """
    if key is None:
        return pl.lit(None, pl.String).alias("line_hash")
    derived = hmac.new(key, b"quarantined-line", hashlib.sha256).hexdigest()
    line = pl.col("text") if text is None else text
    return plh.CryptographicHashingNameSpace(line).hmac_sha256(key=derived).alias("line_hash")


def carry_key(layout: Layout) -> list[pl.Expr]:
    """The identity a quarantined row still reveals, so the entry's previous version stays."""
    if layout.has_record_id:
        ok = pl.col("record_id").str.contains(r"^[A-Z][0-9]{9}$").fill_null(False)
        return [
            pl.when(ok).then(pl.col("record_id")).alias("carry_record_id"),
            pl.lit(None, pl.String).alias("carry_plate"),
            pl.lit(None, pl.String).alias("carry_state"),
        ]
    ok = (
        pl.col("plate_raw").str.contains(norm.RAW_PLATE_PATTERN).fill_null(False)
        & (pl.col("plate").str.len_chars() > 0)
        & pl.col("state").is_in(sorted(codes("states")))
    )
    return [
        pl.lit(None, pl.String).alias("carry_record_id"),
        pl.when(ok).then(pl.col("plate")).alias("carry_plate"),
        pl.when(ok).then(pl.col("state")).alias("carry_state"),
    ]
