"""Normalization of plates, codes and hit types (docs/formats.md section 3), as
polars expressions and scalars.

Plates keep letters and digits only, upper case. Codes (state, plate type, make, style,
colour) read a legacy digit ``0`` as the letter ``O``; legacy province codes map to their
current code. Raw values are always kept beside the normalized ones. The hit type of an
NCIC line is judged on the line as a person would read it (:func:`hit_type_letters`).
"""

from __future__ import annotations

import re
import unicodedata

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


#: Quotation marks that may stand before a line's first field without being part of it
#: (besides the initial and final quotes of Unicode's Pi and Pf categories).
QUOTES = "\"'`\u201a\u201e\u301d\u301e\u301f"
#: What is stripped before a line's first character is judged: white space, control and
#: format characters (a byte order mark, zero-width spaces) and quotation marks.
_LEAD = (
    "^[\\p{Z}\\p{Cc}\\p{Cf}\\p{Pi}\\p{Pf}" + "".join(f"\\x{{{ord(q):x}}}" for q in QUOTES) + "]+"
)
_LEAD_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Pi", "Pf"})
#: A line whose NFKC form surely starts with its first character: an ASCII letter or digit
#: followed by ASCII (no combining mark can join it) or by nothing.
_PLAIN_START = r"^[A-Za-z0-9](?:[\x00-\x7F]|$)"


def hit_type_letters(text: pl.Series) -> pl.Series:
    """The hit type each line shows: its first character, upper case, after NFKC
    normalization and with white space, format characters (a byte order mark) and quotes
    stripped from its start. ``""`` for a line with no such character.

    A full-width N (U+FF2E), a byte order mark or a quote before ``N`` do not hide an
    immigration violator record. Most lines start plainly; only the others are normalized.
    """
    frame = pl.DataFrame({"text": text.fill_null("")})
    plain = frame.select(pl.col("text").str.contains(_PLAIN_START)).to_series()
    letters = frame.select(pl.col("text").str.slice(0, 1).str.to_uppercase()).to_series()
    if plain.all():
        return letters.alias("letter")
    odd = frame.with_row_index("_i").filter(~plain)
    judged = odd.select(
        pl.col("_i"),
        pl.col("text")
        .str.normalize("NFKC")
        .str.replace(_LEAD, "")
        .str.slice(0, 1)
        .str.to_uppercase(),
    )
    return letters.scatter(judged["_i"], judged["text"]).alias("letter")


def hit_type_letter_value(line: str) -> str:
    """:func:`hit_type_letters` for one line, in plain Python (its reference)."""
    text = unicodedata.normalize("NFKC", line)
    start = 0
    while start < len(text) and (
        text[start] in QUOTES or unicodedata.category(text[start]) in _LEAD_CATEGORIES
    ):
        start += 1
    return text[start : start + 1].upper()
