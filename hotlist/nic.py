"""The NCIC Number (NIC): one upper-case ASCII letter, then nine ASCII digits.

One home for the format, read by the contracts (which validate loaded rows) and by the
command line (which takes NICs to purge by hand). It imports nothing heavy.
"""

from __future__ import annotations

import re

#: The NIC as a regular expression for whole-value matching in polars and pandera.
NIC_PATTERN = r"^[A-Z][0-9]{9}$"

# fullmatch, so a trailing newline does not pass as Python's ``$`` would let it.
_NIC = re.compile(r"[A-Z][0-9]{9}")


def is_nic(value: str) -> bool:
    """Is this exactly a NIC (no spaces, no lower case, no non-ASCII look-alikes)?"""
    return _NIC.fullmatch(value) is not None


def parse_nic(value: str) -> str | None:
    """A NIC as an operator types it (surrounding spaces, lower case), or None.

    Only ASCII is upper-cased: the dotless i (U+0131) upper-cases to ``I``, and one typed by
    mistake must not become another record's NIC.
    """
    text = value.strip()
    if not text.isascii():
        return None
    text = text.upper()
    return text if is_nic(text) else None
