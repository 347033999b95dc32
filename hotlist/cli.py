"""The ``hotlist`` command line.

Commands that need no orchestration (status, lookup, audit) never import Prefect: a cold
Prefect start costs 14-28 s here. ``ingest`` runs as a tracked Prefect flow run when a
Prefect API is configured (PREFECT_API_URL) or ``--prefect`` is given, and otherwise runs
the same steps in-process, untracked, and says so.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hotlist.config import ConfigError, Settings, is_immigration_purpose, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])
audit_app = typer.Typer(no_args_is_help=True, help="The SB 34 access log.")
app.add_typer(audit_app, name="audit")
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML configuration (default: $HOTLIST_CONFIG, else built-in defaults).",
    ),
]


class SourceName(StrEnum):
    svs = "svs"
    ncic = "ncic"


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def ingest(
    source: Annotated[
        SourceName, typer.Argument(help="svs (the three CLEW tables) or ncic (the NCIC extract)")
    ],
    config: ConfigOption = None,
    approve_mass_removal: Annotated[
        str | None,
        typer.Option(
            help="SHA-256 of one file allowed to remove more than the guard's share of entries."
        ),
    ] = None,
    prefect: Annotated[
        bool | None,
        typer.Option(
            "--prefect/--no-prefect",
            help="Run as a tracked Prefect flow run (default: only when PREFECT_API_URL is set).",
        ),
    ] = None,
) -> None:
    """Fetch a source's files and apply each whole or not at all."""
    from hotlist.ingest import IngestFailed, Rejection, describe, ingest_source
    from hotlist.sources import FetchError

    settings = _settings(config)
    tracked = prefect if prefect is not None else bool(os.environ.get("PREFECT_API_URL"))
    if tracked:
        from flows.ingest_ncic import ingest_ncic
        from flows.ingest_svs import ingest_svs

        flow = ingest_svs if source is SourceName.svs else ingest_ncic
        state = flow(
            config=str(config) if config else None,
            approve_mass_removal=approve_mass_removal,
            return_state=True,
        )
        if not state.is_completed():
            err.print(f"[red]flow run {state.name}:[/red] {state.message}")
            raise typer.Exit(1)
        console.print(f"flow run completed: {state.result()}")
        return
    err.print("[dim]no Prefect API configured: running in-process, untracked (see README)[/dim]")
    try:
        outcomes = ingest_source(settings, source.value, approve_mass_removal)
    except FetchError as exc:
        err.print(f"[red]fetch failed:[/red] {exc}")
        raise typer.Exit(1) from None
    except IngestFailed as exc:
        for outcome in exc.outcomes:
            (err if isinstance(outcome, Rejection) else console).print(describe(outcome))
            if isinstance(outcome, Rejection):
                err.print(f"  {outcome.message}")
        raise typer.Exit(1) from None
    for outcome in outcomes:
        console.print(describe(outcome))
    if not outcomes:
        console.print("nothing new upstream")


@app.command()
def status(
    config: ConfigOption = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Per feed: version, entries, last file, age, fresh or stale, quarantined rows."""
    from hotlist.status import feed_statuses

    statuses = feed_statuses(_settings(config))
    if as_json:
        print(
            json.dumps(
                [
                    {**s.__dict__, "applied_at": s.applied_at.isoformat() if s.applied_at else None}
                    for s in statuses
                ],
                indent=2,
            )
        )
        return
    table = Table(title="hotlist status")
    for col in (
        "source",
        "feed",
        "version",
        "entries",
        "quarantined",
        "last file",
        "age",
        "freshness",
        "last event",
    ):
        table.add_column(col)
    for s in statuses:
        age = "never" if s.age_hours is None else f"{s.age_hours:.1f} h"
        fresh = "[red]STALE[/red]" if s.stale else "[green]fresh[/green]"
        table.add_row(
            s.source,
            s.feed,
            str(s.version or "-"),
            str(s.entries),
            str(s.quarantined),
            s.last_file or "-",
            age,
            f"{fresh} (limit {s.freshness_hours:g} h)",
            s.last_event or "-",
        )
    console.print(table)
    if any(s.stale for s in statuses):
        raise typer.Exit(3)


@app.command()
def lookup(
    plate: Annotated[str, typer.Argument(help="The plate to look up (normalized like the lists).")],
    user: Annotated[str, typer.Option("--user", help="Your username (SB 34 access log).")],
    org: Annotated[str, typer.Option("--org", help="Your agency's ORI (SB 34 access log).")],
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
    from hotlist import audit
    from hotlist.lookup import find_hits
    from hotlist.status import feed_statuses

    settings = _settings(config)
    element = f"plate {plate}" + (f" state {state}" if state else "")
    refusal = None
    if is_immigration_purpose(purpose):
        refusal = "refused: immigration enforcement is never a permitted purpose (SB 54)"
    elif purpose not in settings.access.purposes:
        refusal = (
            f"refused: purpose not in the agency policy ({', '.join(settings.access.purposes)})"
        )
    if refusal:
        audit.append(
            settings.data_dir, audit.AccessRecord(user, org, purpose, element, refusal, "cli")
        )
        err.print(f"[red]{refusal}[/red]")
        raise typer.Exit(4)
    hits = find_hits(settings.data_dir, plate, state)
    audit.append(
        settings.data_dir,
        audit.AccessRecord(user, org, purpose, element, f"granted: {len(hits)} hits", "cli"),
    )
    stale = [f"{s.feed}" for s in feed_statuses(settings) if s.stale]
    if as_json:
        print(json.dumps({"hits": [h.as_dict() for h in hits], "stale_feeds": stale}, indent=2))
        return
    if stale:
        err.print(
            f"[yellow]warning: stale feeds {', '.join(stale)}: they may miss recent changes[/yellow]"
        )
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


@audit_app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check the access log's hash chain; exit 1 naming the first broken record."""
    from hotlist import audit

    result = audit.verify_chain(_settings(config).data_dir)
    if result.ok:
        console.print(f"access log intact: {result.records} records")
        return
    err.print(f"[red]access log tampered:[/red] {result.problem}")
    raise typer.Exit(1)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its files.")] = Path(
        "demo-data"
    ),
) -> None:
    """Generate day-1 and day-2 sample files and run both ingests through Prefect."""
    from hotlist.demo import run_demo

    sys.exit(run_demo(workdir, console))
