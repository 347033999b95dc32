"""When an occurrence of a removed record's plate in text is that plate, and when it is
the digits of something else (a NIC, a count, a time, a hash, a UUID).

The verification (:mod:`hotlist.scan`, :mod:`hotlist.verify_access`) finds a plate in raw
bytes and free text by substring; every file is full of numbers, and a plate of digits
inside one of them is no copy of a record. The rule, :func:`edges`, and how an
occurrence is judged against it in text (:func:`stands`) and in the bytes of each
encoding (:func:`encoded_edges`, :func:`clear`); ``docs/inventory.md``, "Digits of
something else", states it for operators.
"""

from __future__ import annotations

import functools
import re
import string

#: Text encodings a marker is searched in, in raw bytes.
ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
#: The longest escape that writes one character before a plate (``\U0001f600``).
ESCAPE_CHARS = 10

#: Digits and lowercase hexadecimal letters: the characters numbers, hashes and UUIDs are
#: written in. A plate of digits only with one of them beside it is that value's digits.
NUMBER_CHARS = frozenset("0123456789abcdef")
DIGITS = frozenset("0123456789")
#: Strings (or their bytes in an encoding) that make an occurrence beside them a chance one.
Edge = frozenset[str] | frozenset[bytes]
#: A decimal point with a digit on its far side: ``0.3456789`` and ``3456789.5`` are numbers.
_POINT_BEFORE = frozenset(d + "." for d in DIGITS)
_POINT_AFTER = frozenset("." + d for d in DIGITS)
#: A time as the system writes one (ISO 8601, to the second or finer, in UTC or with its
#: offset): where a field or report value holds a time, ``04T14`` in it is a day and an
#: hour, not a plate. Only a time on its own (no letter or digit touching it): in
#: ``ABC2026-12-04T15:14:18Z`` the ``2026`` may end a plate, and is no year taken out.
#: Only a time of a real month, day, hour and minute: ``2026-12-12T45:00:00Z`` is no
#: time, and ``12T45`` in it no day and hour.
ISO_TIME = re.compile(
    r"\b[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\b"
)


def edges(marker: str) -> tuple[frozenset[str], frozenset[str]]:
    """What, just before or just after an occurrence of ``marker`` in text (one character,
    or two: a decimal point and a digit), makes it the digits of something else (a
    number, a NIC, a hash) and not the plate.

    * A plate of digits only (``3456789``) stands where no digit, lowercase hexadecimal
      letter or decimal point before a digit touches it: inside ``V123456789`` (a NIC in
      a deletion report), a time, a count, a fraction or a UUID it is that value's
      digits, and those fill every file.
    * A plate ending in a digit (``V12345``) stands where no digit follows it: followed by
      one it is the start of a longer number (the NIC ``V123456789``), or a longer plate.
    * Otherwise any occurrence stands (``CA7ABC123``: a key built of state and plate).
    """
    if marker.isascii() and marker.isdigit():
        return NUMBER_CHARS | _POINT_BEFORE, NUMBER_CHARS | _POINT_AFTER
    if marker[-1:] in DIGITS:
        return frozenset(), DIGITS
    return frozenset(), frozenset()


#: An escape that writes one character by its code: ``\u00b0`` (JSON, which writes every
#: character outside ASCII so), ``\xa0`` (a Python repr, ``backslashreplace``), ``%20``
#: (a URL), ``\b`` and ``\f`` (JSON's backspace and form feed). What stands before a
#: plate written after one is that character, not the escape's last hexadecimal digit or
#: letter: ``N\u00b03456789`` is ``N°3456789``.
_ESCAPE = r"(?:\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}|\\x[0-9A-Fa-f]{2}|%[0-9A-Fa-f]{2}|\\[bf])\Z"
#: :data:`_ESCAPE` in text, and the encoding of the bytes it is searched in ("" for text).
Escape = tuple["re.Pattern[str] | re.Pattern[bytes]", str]
_TEXT_ESCAPE: Escape = (re.compile(_ESCAPE), "")


def _escaped(window: str | bytes, escape: Escape) -> bool:
    """Whether ``window`` (what stands before an occurrence) ends with an escape of a
    character that is no digit or lowercase hexadecimal letter (:data:`_ESCAPE`)."""
    pattern, encoding = escape
    if isinstance(window, str) and isinstance(pattern.pattern, str):
        found = pattern.search(window)
        code = found.group() if found else ""
    elif isinstance(window, bytes) and isinstance(pattern.pattern, bytes):
        match = pattern.search(window)
        code = match.group().decode(encoding) if match else ""
    else:
        return False
    if not code:
        return False
    if code[1:] in ("b", "f"):  # JSON's backspace and form feed
        return True
    value = int(code[1:] if code.startswith("%") else code[2:], 16)
    return value > 0x10FFFF or chr(value) not in NUMBER_CHARS


def clear(
    text: str | bytes,
    start: int,
    end: int,
    width: int,
    before: Edge,
    after: Edge,
    escape: Escape | None = None,
) -> bool:
    """Whether nothing of ``before`` (strings of one or two characters, each ``width``
    units wide) ends at ``start`` and nothing of ``after`` starts at ``end``. What
    ``text`` does not show (before its start, after its end) is clear. Where ``escape``
    is given, a character written as an escape (:data:`_ESCAPE`) ending at ``start`` is
    judged as the character it writes.

    A character cut short by the text's edge (a pattern read one byte off its text's
    alignment: a UTF-16-LE plate inside UTF-16-BE text ends one byte into the next
    character) is judged by what it can be the part of."""
    following = text[end : end + width]
    if following in after or text[end : end + 2 * width] in after:
        return False
    if 0 < len(following) < width and any(a.startswith(following) for a in after):  # type: ignore[arg-type]
        return False
    preceding = text[max(start - width, 0) : start]
    if 0 < len(preceding) < width and any(b.endswith(preceding) for b in before):  # type: ignore[arg-type]
        return False
    if preceding in before or text[max(start - 2 * width, 0) : start] in before:
        window = text[max(start - ESCAPE_CHARS * width, 0) : start]
        return escape is not None and _escaped(window, escape)
    return True


def _standing(text: str, needle: str, before: Edge, after: Edge) -> bool:
    """Whether ``needle`` occurs in ``text`` clear of ``before`` and ``after``."""
    start = text.find(needle)
    while start >= 0:
        if clear(text, start, start + len(needle), 1, before, after, _TEXT_ESCAPE):
            return True
        start = text.find(needle, start + 1)
    return False


def stands(text: str, marker: str) -> bool:
    """Whether ``marker`` occurs in ``text`` where it can be a plate (:func:`edges`)."""
    before, after = edges(marker)
    if not (before or after):
        return marker in text
    return _standing(text, marker, before, after)


def encoded_edges(pattern: bytes) -> tuple[int, Edge, Edge, Escape] | None:
    """For a marker's bytes in one of :data:`ENCODINGS`: the width of a character and
    the strings of :func:`edges` in that encoding; None where any occurrence stands."""
    for encoding in ENCODINGS:
        try:
            marker = pattern.decode(encoding)
        except UnicodeDecodeError:
            continue
        if marker.isascii() and marker.isprintable() and marker.encode(encoding) == pattern:
            before, after = edges(marker)
            if not (before or after):
                return None
            return _in_encoding(before, after, encoding)
    return None


@functools.cache
def _in_encoding(
    before: frozenset[str], after: frozenset[str], encoding: str
) -> tuple[int, Edge, Edge, Escape]:
    """:func:`edges`' strings as bytes of ``encoding``, the width of its characters, and
    :data:`_ESCAPE` in its bytes (a few kinds of edges in a few encodings: made once each)."""
    width = len("0".encode(encoding))

    def char(c: str) -> bytes:
        return re.escape(c.encode(encoding))

    digit = b"(?:" + b"|".join(char(c) for c in string.hexdigits) + b")"
    escapes = [
        char("\\") + char("u") + digit + b"{4}",
        char("\\") + char("U") + digit + b"{8}",
        char("\\") + char("x") + digit + b"{2}",
        char("%") + digit + b"{2}",
        char("\\") + b"(?:" + char("b") + b"|" + char("f") + b")",
    ]
    return (
        width,
        frozenset(c.encode(encoding) for c in before),
        frozenset(c.encode(encoding) for c in after),
        (re.compile(b"(?:" + b"|".join(escapes) + b")\\Z"), encoding),
    )


#: A whole number written on its own in a sentence (not part of a word, NIC, hash, time,
#: decimal, path or ``key=value``), of five digits or more: a shorter one holds no plate
#: the raw search looks for (:data:`~hotlist.scan.MIN_SCAN_LEN`), and years stay as written.
_NUMBER = re.compile(r"(?<![\w.:/=])(?<!\w[+-])[0-9]{5,}(?![\w./-])")


def grouped(text: str) -> str:
    """``text`` with its whole numbers in groups of three digits (``16,817``).

    For what the system writes where it is kept and searched as raw bytes but not read
    as a structure: the messages, logs and artifacts of its flow runs in Prefect's
    database. There a count written ``16817`` is where a removed plate ``16817`` can
    stand, and it stays as long as Prefect keeps the run; written ``16,817`` no plate of
    :data:`~hotlist.scan.MIN_SCAN_LEN` digits stands in it."""
    return _NUMBER.sub(lambda m: _in_groups(m.group()), text)


def _in_groups(digits: str) -> str:
    """``digits`` in groups of three from the right, as written (``0012345``:
    ``0,012,345``; a number of any length: no conversion to ``int``)."""
    head = len(digits) % 3 or 3
    return ",".join([digits[:head], *(digits[i : i + 3] for i in range(head, len(digits), 3))])
