"""The SB 34 usage and privacy policy, built from what this installation enforces.

Civil Code 1798.90.51(b) (ALPR operators) and 1798.90.53(b) (ALPR end-users) require a
policy, available to the public in writing, that states: the authorized purposes; the job
titles or designations of the people authorized to use the data, and their training; how
the system is monitored for security and compliance; the purposes of, process for and
restrictions on sharing or transfer; the title of the official custodian; the measures
that keep the data accurate and correct its errors; and how long data is retained and how
it is destroyed.

What the code enforces (purposes, who receives data, the refusal of immigration
enforcement, the purge and consumer deadlines, retention, the update cadence) is written
from the configuration and the code's own constants, so the page cannot drift from the
behaviour. What only the agency can say comes from ``[access.policy]``; a part it leaves
out is printed as "not stated" and listed by :func:`missing_parts`, which the server warns
about when it starts.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from hotlist.access import IMMIGRATION_STEMS, IMMIGRATION_WORDS
from hotlist.audit import retention_months
from hotlist.config import Settings
from hotlist.serve.consumers import AgencyKind

NOT_STATED = "not stated"


@dataclass(frozen=True)
class Schedule:
    """A scheduled flow, as deployed by ``prefect.yaml`` (a test holds the two equal)."""

    deployment: str
    crons: tuple[str, ...]
    said: str


#: The deployments' schedules (America/Los_Angeles), as the policy states them.
SCHEDULES = (
    Schedule(
        "clew-svs",
        ("5 */2 * * *",),
        "The CA DOJ CLEW stolen-vehicle tables are fetched and applied every 2 hours.",
    ),
    Schedule(
        "ncic-extract",
        ("30 6,18 * * *", "30 9,21 * * *"),
        "The FBI NCIC plate extract is fetched and applied twice a day (06:30 and 18:30"
        " Pacific), with a catch-up run three hours after each for a late extract.",
    ),
    Schedule(
        "watch-sources",
        ("interval 3600",),
        "Between those runs each source is checked for a changed file every poll interval"
        " (60 seconds unless configured otherwise; the check reads no record), and a changed"
        " file is fetched and applied at once.",
    ),
    Schedule(
        "purge-sweep",
        ("45 * * * *",),
        "Every applied upstream file starts a purge, which erases what upstream removed and"
        " verifies the erasure; an hourly sweep catches anything an interrupted run left.",
    ),
)


def _stated(value: str | None) -> str:
    return value.strip() if value and value.strip() else NOT_STATED.upper()


def missing_parts(settings: Settings) -> list[str]:
    """The operator's parts of the policy that the configuration leaves out."""
    given = settings.access.policy
    parts = {
        "agency_name": (given.agency_name, "the agency's name"),
        "custodian_title": (given.custodian_title, "the title of the official custodian"),
        "authorized_roles": (
            ", ".join(r for r in given.authorized_roles if r.strip()),
            "the job titles of the people authorized to use the data",
        ),
        "training": (given.training, "the training those people need"),
        "contact": (given.contact, "where the public asks questions or reports errors"),
    }
    return [
        f"{what} ([access.policy] {key})"
        for key, (value, what) in parts.items()
        if not (value and value.strip())
    ]


def _hours(value: float) -> str:
    return f"{value:g} hour" + ("" if value == 1 else "s")


def _months(months: int) -> str:
    if months % 12 == 0:
        return f"{months // 12} year" + ("" if months == 12 else "s")
    return f"{months} months"


def render_policy(settings: Settings) -> str:
    """The policy as plain text (what ``/privacy-policy`` serves and ``hotlist policy show``
    prints)."""
    given = settings.access.policy
    agency = _stated(given.agency_name)
    roles = [r.strip() for r in given.authorized_roles if r.strip()]
    receiving = [k.value for k in AgencyKind if k.may_receive]
    refused_kinds = [k.value for k in AgencyKind if not k.may_receive]
    freshness = sorted(
        {
            (feed, source.guards.freshness_hours)
            for source in settings.sources.values()
            for feed in source.files
        }
    )
    purge = settings.purge
    words = ", ".join(sorted(IMMIGRATION_WORDS))
    stems = ", ".join(IMMIGRATION_STEMS)

    sections: list[tuple[str, list[str]]] = [
        (
            "1. Authorized purposes (Civil Code 1798.90.51(b)(2)(A), 1798.90.53(b)(2)(A))",
            [
                "Hotlist data and the plates looked up in it are used only for these purposes;"
                " every request names one, and any other is refused:",
                *(f"  - {p}" for p in settings.access.purposes),
                "Immigration enforcement is never a purpose (SB 54, Government Code 7284.6),"
                " whoever asks and however it is spelled. A purpose is compared after Unicode"
                " NFKC normalization and case folding; a request or a configuration naming"
                f" any of these words is refused: {words}; or containing any of: {stems}.",
                "Records of the NCIC immigration-violator file (hit type N) are never stored.",
            ],
        ),
        (
            "2. Authorized users and their training (1798.90.51(b)(2)(B), 1798.90.53(b)(2)(B))",
            [
                "People authorized to use or access the data: "
                + ("; ".join(roles) if roles else NOT_STATED.upper())
                + ".",
                f"Training required before access: {_stated(given.training)}.",
                "Every access names the person (a username) and the agency; an access that"
                " does not is refused.",
            ],
        ),
        (
            "3. Monitoring for security and compliance (1798.90.51(b)(2)(C), 1798.90.53(b)(2)(C))",
            [
                "Every access, granted or refused, through the command line or the patrol API,"
                " is written to an access log: the time, the data element used (the plate"
                " looked up, or the hotlist version pulled), the username, the organization,"
                " the purpose, the outcome and where the request came from.",
                "The log is chained: each record carries a keyed hash (HMAC-SHA256) of the one"
                " before, under a key kept outside the log's directory, and the chain's head is"
                " recorded outside the log at every purge and at least hourly; `hotlist audit"
                " verify` detects an edited, removed, reordered or truncated record. `hotlist"
                " audit report` shows reviewers the accesses by agency, user, purpose and"
                " outcome, the refusals, and unusual volume or after-hours use.",
                "Patrol systems authenticate with a key of their own, stored only as a hash and"
                " revocable at once. A request that repeats its user, purpose or key header is"
                " refused, and so is a request from an agency that may not receive data.",
            ],
        ),
        (
            "4. Sharing and transfer (1798.90.51(b)(2)(D), 1798.90.53(b)(2)(D))",
            [
                "Purpose: to give the agency's patrol and ALPR systems a current hotlist.",
                "Restrictions: data is shared only with California public agencies (agency"
                f" kinds {', '.join(receiving)}); consumers of {', '.join(refused_kinds)}"
                " agencies are refused and every refusal is logged (1798.90.55(b)). Data is"
                " never sold, and never shared for immigration enforcement.",
                "Process: the custodian registers each receiving system with its agency's ORI"
                " and kind, and issues it a key. A receiving system must drop a removed record"
                f" within {_hours(purge.consumer_sla_hours)}; each copy's acknowledgement is"
                " recorded and the deletion reports list copies still outstanding.",
            ],
        ),
        (
            "5. Official custodian (1798.90.51(b)(2)(E), 1798.90.53(b)(2)(E))",
            [f"The title of the official custodian: {_stated(given.custodian_title)}."],
        ),
        (
            "6. Accuracy and correction of errors (1798.90.51(b)(2)(F), 1798.90.53(b)(2)(F))",
            [
                *(s.said for s in SCHEDULES),
                "Each upstream file is validated before it is applied; malformed lines are set"
                " aside and a file that would remove or reject an unusual share of the list is"
                " not applied. A feed older than its limit is marked stale on every answer ("
                + ", ".join(f"{feed}: {_hours(h)}" for feed, h in freshness)
                + ").",
                "A record removed upstream is removed from every local copy within"
                f" {_hours(purge.sla_hours)}, and the removal is verified by a search of the"
                " data directory. OCR look-alike matches are marked as candidates, never as"
                " hits.",
                f"To report an error or ask about this policy: {_stated(given.contact)}.",
            ],
        ),
        (
            "7. Retention and destruction (1798.90.51(b)(2)(G), 1798.90.53(b)(2)(G))",
            [
                "A hotlist record is kept only while the upstream list holds it. Once removed"
                " upstream it is purged: every file that held it is overwritten, flushed to"
                " disk and deleted, then the data directory is searched to verify that no copy"
                " remains, and a deletion report records it.",
                f"The access log is kept {_months(retention_months(settings))}, then its"
                " sealed monthly segments are deleted; the last record of each is anchored"
                " first, so an expiry cannot pass for a deletion.",
            ],
        ),
    ]
    lines = [
        f"ALPR usage and privacy policy of {agency}",
        "",
        *textwrap.wrap(
            "Written by hotlist from the configuration it enforces (SB 34, Civil Code"
            " 1798.90.51 and 1798.90.53)."
            + (
                " Parts marked NOT STATED are the agency's to supply."
                if missing_parts(settings)
                else ""
            ),
            width=88,
        ),
    ]
    for title, paragraphs in sections:
        lines += ["", title]
        for paragraph in paragraphs:
            item = paragraph.startswith("  - ")
            if not item:
                lines.append("")
            lines += textwrap.wrap(
                paragraph, width=88, subsequent_indent="    " if item else "",
                break_on_hyphens=False,
            )  # fmt: skip
    return "\n".join(lines) + "\n"
