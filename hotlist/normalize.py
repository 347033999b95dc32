"""Normalization of plates and codes (formats.md section 3), as polars expressions and scalars.

Plates keep letters and digits only, upper case. Codes (state, plate type, make, style,
colour) read a legacy digit ``0`` as the letter ``O``; legacy province codes map to their
current code. Raw values are always kept beside the normalized ones.
"""

from __future__ import annotations

import re

import polars as pl

from hotlist.codes import state_aliases

#: Plates that are placeholders, not hits.
NOT_A_HIT_PLATES = frozenset({"", "NONE", "UNK", "UNKNOWN", "0", "00", "000", "190"})
#: Characters a raw plate may carry; anything else makes the row malformed.
RAW_PLATE_PATTERN = r"^[A-Za-z0-9 .\-]*$"
_NOT_PLATE_CHARS = re.compile(r"[^A-Z0-9]")
#: What trimming removes around a code (the same set for polars and for Python).
BLANKS = " \t\r\n\f\v"

#: OCR look-alike classes used for fuzzy candidate matching only, never for storage.
OCR_CLASSES = ("0ODQ", "1I", "2Z", "5S", "8B", "6G")
_OCR_CANONICAL = {ch: group[0] for group in OCR_CLASSES for ch in group}


def plate(expr: pl.Expr) -> pl.Expr:
    """Upper case, letters and digits only."""
    return expr.str.to_uppercase().str.replace_all(r"[^A-Z0-9]", "")


def code(expr: pl.Expr) -> pl.Expr:
    """Trim, upper case, legacy digit zero read as letter O."""
    return expr.str.strip_chars(BLANKS).str.to_uppercase().str.replace_all("0", "O", literal=True)


def state(expr: pl.Expr) -> pl.Expr:
    """A code, then legacy province aliases (``PQ`` -> ``QC``, ``NF`` -> ``NL``)."""
    aliases = state_aliases()
    return code(expr).replace(list(aliases), list(aliases.values()))


def plate_value(raw: str) -> str:
    return _NOT_PLATE_CHARS.sub("", raw.upper())


def code_value(raw: str) -> str:
    return raw.strip(BLANKS).upper().replace("0", "O")


def state_value(raw: str) -> str:
    value = code_value(raw)
    return state_aliases().get(value, value)


def is_hit_plate(normalized: str) -> bool:
    return normalized not in NOT_A_HIT_PLATES


def ocr_key(normalized_plate: str) -> str:
    """Collapse OCR look-alikes so that ``8OB1`` and ``B0D1`` share a key."""
    return "".join(_OCR_CANONICAL.get(ch, ch) for ch in normalized_plate)
