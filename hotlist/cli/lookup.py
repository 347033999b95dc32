"""``hotlist lookup``: a plate in every list, under the access policy, every access logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hotlist import access
from hotlist.cli.common import (
    ConfigOption,
    ExitCode,
    console,
    existing_data_dir,
    fail,
    settings_from,
    text_option,
    warn,
)

app = typer.Typer()

UserOption = Annotated[str, typer.Option("--user", help="Your username (SB 34 access log).")]
OrgOption = Annotated[
    str, typer.Option("--org", help="Your agency's ORI: CA and 7 more characters (SB 34).")
]


def log_access(
    data_dir: Path, user: str, org: str, purpose: str, element: str, outcome: str
) -> None:
    """One record in the SB 34 access log, as for every access from the command line."""
    from hotlist import audit

    audit.append(data_dir, audit.AccessRecord(user, org, purpose, element, outcome, "cli"))


def checked_access(
    data_dir: Path, user: str, org: str, purpose: str, purposes: tuple[str, ...], element: str
) -> tuple[str, str]:
    """The access policy's answer: the user and ORI to log, or the refusal logged, exit 4."""
    user = text_option(user, "--user")
    refused = access.refusal(user=user, org=org, purpose=purpose, purposes=purposes)
    if refused is not None:
        log_access(data_dir, user, org, purpose, element, f"refused: {refused.reason}")
        fail(refused.reason, ExitCode.REFUSED, "refused")
    return user, org.strip().upper()


@app.command()
def lookup(
    plate: Annotated[str, typer.Argument(help="The plate to look up (normalized like the lists).")],
    user: UserOption,
    org: OrgOption,
    purpose: Annotated[
        str, typer.Option("--purpose", help="Purpose from the agency policy's list.")
    ],
    state: Annotated[
        str | None, typer.Option("--state", help="Plate state or province code.")
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Look a plate up in every list; every lookup is written to the access log."""
    from hotlist.lookup import NoHotlistLoaded, find_hits, loaded_feeds
    from hotlist.status import feed_statuses

    settings = settings_from(config)
    data_dir = existing_data_dir(settings)
    element = f"plate {plate}" + (f" state {state}" if state else "")
    user, org = checked_access(data_dir, user, org, purpose, settings.access.purposes, element)
    purpose = access.normalize_purpose(purpose)
    try:
        loaded_feeds(data_dir)
    except NoHotlistLoaded:
        log_access(data_dir, user, org, purpose, element, "failed: no hotlist loaded")
        raise
    hits = find_hits(data_dir, plate, state)
    log_access(data_dir, user, org, purpose, element, f"granted: {len(hits)} hits")
    stale = [f"{s.feed}" for s in feed_statuses(settings) if s.stale]
    if as_json:
        print(json.dumps({"hits": [h.as_dict() for h in hits], "stale_feeds": stale}, indent=2))
        return
    if stale:
        warn(f"stale feeds {', '.join(stale)}: they may miss recent changes")
    if not hits:
        console.print("no hits")
        return
    table = Table(title=f"{len(hits)} hit(s)")
    for col in ("list", "source", "record id", "plate", "state", "date", "ori", "description"):
        table.add_column(col)
    for h in hits:
        table.add_row(
            h.list,
            h.source,
            h.record_id or f"entry {h.entry_id}",
            h.plate,
            h.state,
            h.record_date.isoformat(),
            h.ori or "-",
            h.description,
        )
    console.print(table)
