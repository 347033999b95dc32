"""``hotlist status``: each feed's version, size, freshness, and the patrol copies' lag."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hotlist.cli.common import ConfigOption, ExitCode, cells, console, fail, problem, settings_from
from hotlist.config import Settings

if TYPE_CHECKING:
    from hotlist.status import FeedStatus

app = typer.Typer()


@app.command()
def status(
    config: ConfigOption = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Per feed: version, entries, last file, age, fresh or stale, quarantined rows."""
    from hotlist.status import feed_statuses

    settings = settings_from(config)
    statuses = feed_statuses(settings)
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
    else:
        _feed_table(statuses)
    if not settings.data_dir.is_dir():
        # Said after the table, which shows every feed never loaded; nothing is created.
        fail(
            f"no hotlist loaded at {settings.data_dir}: data_dir does not exist (is it mistyped?)",
            ExitCode.NOT_FRESH,
        )
    if not as_json:
        for s in statuses:
            if s.last_error:
                problem(s.feed, s.last_error)
        _consumer_lag(settings)
    if any(s.stale for s in statuses):
        raise typer.Exit(ExitCode.NOT_FRESH)


def _feed_table(statuses: list[FeedStatus]) -> None:
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
        *data, event = cells(
            s.source, s.feed, s.version or "-", s.entries, s.quarantined, s.last_file or "-", age,
            s.last_event or "-",
        )  # fmt: skip
        table.add_row(*data, f"{fresh} (limit {s.freshness_hours:g} h)", event)
    console.print(table)


def _consumer_lag(settings: Settings) -> None:
    from hotlist.serve.registry import has_registry, registry_for
    from hotlist.store.state import read_state

    if not has_registry(settings):
        return
    current = int(read_state(settings.data_dir).get("hotlist_version", 0))
    from hotlist.serve.seen import copy_states

    table = Table(title=f"patrol copies (hotlist version {current})")
    columns = ("consumer", "agency", "acked version", "lag (versions)", "acked at", "last pull")
    for col in (*columns, "copy"):
        table.add_column(col)
    with registry_for(settings) as registry:
        consumers, pulls = registry.all_consumers(), registry.last_pulls()
    states = copy_states(pulls, consumers, current, settings.purge.consumer_sla_hours)
    by_name = {c.name: c for c in consumers}
    for s in states:
        c = by_name[s.consumer]
        lag = "never pulled" if s.lag is None else str(s.lag)
        pulled = s.last_pull.isoformat(timespec="seconds") if s.last_pull else "-"
        shown = f"[red]{s.state}[/red]" if s.fell_behind else s.state
        table.add_row(
            *cells(c.name, c.agency_ori, c.acked_version or "-", lag, c.acked_at or "-", pulled),
            shown,
        )
    console.print(table)
