"""``hotlist lookup``: a plate in every list, under the access policy, every access logged."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from hotlist import access
from hotlist.cli.access_log import OrgOption, UserOption, checked_access, log_access
from hotlist.cli.common import (
    ConfigOption,
    cells,
    console,
    existing_data_dir,
    settings_from,
    warn,
)

app = typer.Typer()


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
    from hotlist.lookup import (
        BadQuery,
        NoHotlistLoaded,
        find_hits,
        loaded_feeds,
        plate_query,
        state_query,
    )
    from hotlist.status import feed_statuses

    settings = settings_from(config)
    data_dir = existing_data_dir(settings)
    element = f"plate {plate}" + (f" state {state}" if state else "")
    user, org = checked_access(settings, user, org, purpose, settings.access.purposes, element)
    purpose = access.normalize_purpose(purpose)
    try:
        wanted = plate_query(plate)
        wanted_state = state_query(state) if state else None
        loaded_feeds(data_dir)
    except BadQuery as exc:
        log_access(settings, user, org, purpose, element, f"failed: {exc}")
        raise
    except NoHotlistLoaded:
        log_access(settings, user, org, purpose, element, "failed: no hotlist loaded")
        raise
    hits = find_hits(data_dir, wanted, wanted_state)
    log_access(settings, user, org, purpose, element, f"granted: {len(hits)} hits")
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
            *cells(
                h.list,
                h.source,
                h.record_id or f"entry {h.entry_id}",
                h.plate,
                h.state,
                h.record_date.isoformat(),
                h.ori or "-",
                h.description,
            )
        )
    console.print(table)
