"""The access policy: may this user, of this organization, for this purpose, see hotlist data?

One place answers it for every way in (the CLI and the patrol API):

* SB 34 (Civil Code 1798.90.5 ff.): ALPR information goes only to California public
  agencies, and every access names a person, an agency and a purpose.
* SB 54 (Government Code 7284.6): never for immigration enforcement, however the purpose
  is spelled. A purpose is compared after Unicode NFKC normalization and case folding, so
  full-width letters, ligatures and case do not slip past; look-alike letters from other
  scripts (dotless i, Cyrillic i) are not letters of a purpose at all, because a purpose
  is a slug of ``a-z``, ``0-9`` and ``-``.

The immigration-enforcement terms refused, and why each is there, are listed in
``docs/access-policy.md``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

#: A purpose, once normalized: lower-case ASCII letters, digits and single hyphens.
PURPOSE_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

#: An ORI of a California agency: 9 characters, ``CA`` then 7 letters or digits.
CALIFORNIA_ORI = re.compile(r"^CA[A-Z0-9]{7}$")

#: Terms that name immigration enforcement or its agencies, matched as whole words of a
#: normalized purpose (``ice-detainer`` has the word ``ice``; ``police`` does not).
IMMIGRATION_WORDS = frozenset(
    {
        "ice",  # U.S. Immigration and Customs Enforcement
        "ero",  # ICE Enforcement and Removal Operations
        "cbp",  # U.S. Customs and Border Protection
        "uscis",  # U.S. Citizenship and Immigration Services
        "removal",  # removal proceedings (deportation)
        "detainer",  # immigration detainer (hold) requests
        "i247",  # ICE's detainer forms I-247, I-247A, I-247D
        "i247a",
        "i247d",
        "287g",  # 287(g) agreements: local officers acting as immigration agents
        "alien",  # "illegal alien", "alien registration"
        "aliens",
        "undocumented",
        "border",  # border patrol, border enforcement
    }
)

#: Stems that name immigration enforcement wherever they occur in a purpose, words joined
#: or not (``immigrationenforcement``, ``deportation-support``).
IMMIGRATION_STEMS = ("immigra", "deport", "migrant", "customsenforcement", "borderpatrol")

SB54_REFUSAL = "immigration enforcement is never a permitted purpose (SB 54)"


def normalize_purpose(purpose: str) -> str:
    """The purpose as compared: NFKC-normalized, case-folded, trimmed."""
    return unicodedata.normalize("NFKC", purpose).casefold().strip()


def _words(normalized: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z]+", normalized) if w]


def is_immigration_purpose(purpose: str) -> bool:
    """SB 54: does this purpose name immigration enforcement, however it is spelled?"""
    normalized = normalize_purpose(purpose)
    # Letters outside ASCII that NFKC leaves alone (the dotless i, accents) are read as
    # their ASCII skeleton for this check, so "immigration" spelled with dotless i's is
    # caught here too and not only by the slug rule.
    skeleton = unicodedata.normalize("NFKD", normalized.replace("\u0131", "i"))
    skeleton = "".join(c for c in skeleton if c.isascii())
    words = _words(skeleton)
    joined = "".join(words)
    # Initials spelled apart ("i.c.e.", "e-r-o") are read as the word they spell.
    initials = re.findall(r"(?:\b[a-z0-9]\b[^a-z0-9]*){2,}", skeleton)
    candidates = [*words, joined, *("".join(_words(run)) for run in initials)]
    return any(w in IMMIGRATION_WORDS for w in candidates) or any(
        stem in joined for stem in IMMIGRATION_STEMS
    )


def purpose_error(purpose: str) -> str | None:
    """Why this purpose cannot be one of an agency's configured purposes, or None."""
    if is_immigration_purpose(purpose):
        return SB54_REFUSAL
    if not PURPOSE_SLUG.fullmatch(normalize_purpose(purpose)):
        return "a purpose is a slug of a-z, 0-9 and single hyphens"
    return None


def is_california_ori(org: str) -> bool:
    """An ORI of a California agency (9 characters, starting ``CA``).

    Checked for ASCII before upper-casing: ``str.upper`` turns the long s and the
    dotless i into ``S`` and ``I``, and a look-alike must not pass for an agency."""
    text = org.strip()
    return text.isascii() and CALIFORNIA_ORI.fullmatch(text.upper()) is not None


def names_a_person(user: str) -> bool:
    """Does ``user`` name someone: a letter or a digit, not only spaces, marks or
    invisible characters (SB 34 logs who asked)?"""
    return any(c.isalnum() for c in user)


@dataclass(frozen=True)
class Refusal:
    """Why an access is refused: an HTTP status, a short title, and the reason logged."""

    status: int
    title: str
    reason: str


def refusal(
    *,
    user: str,
    org: str,
    purpose: str,
    purposes: Iterable[str],
    agency_may_receive: bool = True,
    agency_kind: str = "",
) -> Refusal | None:
    """Decide one access; None when it is granted.

    ``org`` is the requesting agency's ORI; ``agency_may_receive`` is False for a
    registered consumer of a federal, out-of-state or private agency (SB 34).
    Immigration enforcement is refused first, whoever asks.
    """
    if is_immigration_purpose(purpose):
        return Refusal(403, "Forbidden", SB54_REFUSAL)
    if not agency_may_receive:
        kind = f"{agency_kind} agencies" if agency_kind else "this agency"
        return Refusal(403, "Forbidden", f"{kind} may not receive ALPR information (SB 34)")
    if not is_california_ori(org):
        return Refusal(
            403,
            "Forbidden",
            "the organization must be a California agency's ORI (9 characters, starting CA) (SB 34)",
        )
    if not names_a_person(user):
        return Refusal(400, "User required", "the person asking must be named (SB 34)")
    allowed = tuple(purposes)
    if normalize_purpose(purpose) not in allowed:
        return Refusal(
            403,
            "Forbidden",
            f"the purpose must be one of the agency policy's purposes: {', '.join(allowed)}",
        )
    return None
