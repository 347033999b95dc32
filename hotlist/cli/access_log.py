"""Who asked, for what: the access policy's answer for a command that reads hotlist data,
and the SB 34 access-log record of every answer, granted, refused or failed."""

from __future__ import annotations

from typing import Annotated

import typer

from hotlist import access
from hotlist.cli.common import ExitCode, fail, text_option
from hotlist.config import Settings

UserOption = Annotated[str, typer.Option("--user", help="Your username (SB 34 access log).")]
OrgOption = Annotated[
    str, typer.Option("--org", help="Your agency's ORI: CA and 7 more characters (SB 34).")
]


def log_access(
    settings: Settings, user: str, org: str, purpose: str, element: str, outcome: str
) -> None:
    """One record in the SB 34 access log, as for every access from the command line
    (durable before the command goes on; in PostgreSQL when ``database_url`` is set)."""
    from hotlist import audit

    audit.append(settings, audit.AccessRecord(user, org, purpose, element, outcome, "cli"))


def checked_access(
    settings: Settings, user: str, org: str, purpose: str, purposes: tuple[str, ...], element: str
) -> tuple[str, str]:
    """The access policy's answer: the user and ORI to log, or the refusal logged, exit 4."""
    user = text_option(user, "--user")
    refused = access.refusal(user=user, org=org, purpose=purpose, purposes=purposes)
    if refused is not None:
        log_access(settings, user, org, purpose, element, f"refused: {refused.reason}")
        fail(refused.reason, ExitCode.REFUSED, "refused")
    return user, org.strip().upper()
