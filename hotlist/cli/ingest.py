"""``hotlist ingest``: fetch a source's files and apply each whole or not at all."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hotlist.cli.common import (
    ConfigOption,
    ExitCode,
    console,
    err,
    existing_store,
    fail,
    problem,
    settings_from,
    writable_data_dir,
)
from hotlist.config import Settings

app = typer.Typer()


class SourceName(StrEnum):
    svs = "svs"
    ncic = "ncic"


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
    settings = settings_from(config)
    tracked = prefect if prefect is not None else bool(os.environ.get("PREFECT_API_URL"))
    if tracked:
        _tracked(source, config, approve_mass_removal)
        return
    _in_process(settings, source, approve_mass_removal)


def _tracked(source: SourceName, config: Path | None, approve_mass_removal: str | None) -> None:
    """As Prefect flow runs; a worker's flow run creates data_dir where it runs."""
    from flows.ingest_then_purge import ingest_then_purge

    states = ingest_then_purge(source.value, str(config) if config else None, approve_mass_removal)
    failed = False
    for name, state in zip((f"ingest-{source.value}", "purge"), states, strict=True):
        if state is None:
            continue
        if state.is_completed():
            console.print(f"{name} flow run completed: {state.result()}")
        else:
            failed = True
            problem(f"{name} flow run {state.name}", str(state.message))
    if failed:
        raise typer.Exit(ExitCode.FAILED)


def _in_process(settings: Settings, source: SourceName, approve_mass_removal: str | None) -> None:
    from hotlist.ingest import IngestFailed, Rejection, describe, ingest_source

    err.print("[dim]no Prefect API configured: running in-process, untracked (see README)[/dim]")
    writable_data_dir(settings)
    try:
        outcomes = ingest_source(settings, source.value, approve_mass_removal)
    except IngestFailed as exc:
        for outcome in exc.outcomes:
            if isinstance(outcome, Rejection):
                err.print(escape(describe(outcome)))
                err.print(f"  {escape(outcome.message)}")
            else:
                console.print(escape(describe(outcome)))
        applied = any(not isinstance(o, Rejection) and o.verdict == "applied" for o in exc.outcomes)
        if applied or _pending(settings):
            purge_after_ingest(settings)
        raise typer.Exit(ExitCode.FAILED) from None
    for outcome in outcomes:
        console.print(escape(describe(outcome)))
    if outcomes or _pending(settings):
        purge_after_ingest(settings)
    else:
        console.print("nothing new upstream, nothing pending")


def _pending(settings: Settings) -> bool:
    """Work a killed run left (a version committed but not published, removals not yet
    purged), said aloud: this run finishes it now, not the hourly sweep."""
    from hotlist.store.pending import pending_work

    pending = pending_work(settings.data_dir, settings.published_dir)
    if pending:
        console.print(f"pending from an earlier run: {pending.describe()}")
    return bool(pending)


def purge_after_ingest(settings: Settings) -> None:
    """As the flows do: publish the new version and erase what it removed, verified."""
    from hotlist.purge import default_prefect_home
    from hotlist.purge import purge as run_purge

    result = run_purge(settings, default_prefect_home(), list(settings.purge.scan_paths))
    console.print(
        f"purge run {result.run_id}: {result.purged} records purged; {result.verification.summary()}"
    )


@app.command("reset-clock")
def reset_clock(
    feed: Annotated[str, typer.Argument(help="The feed: svs, sfr, slr or ncic.")],
    requested_by: Annotated[str, typer.Option("--requested-by", help="Who asks (logged).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (logged).")],
    config: ConfigOption = None,
) -> None:
    """Set aside a future extract time that was applied (a bad upstream clock), so real files
    are no longer refused as replays; logged with who and why."""
    from hotlist.feed_clock import set_aside_future_extract_times

    settings = settings_from(config)
    feeds = sorted(f for source in settings.sources.values() for f in source.files)
    if feed not in feeds:
        fail(f"no feed {feed!r} is configured; feeds: {', '.join(feeds)}", ExitCode.USAGE)
    done = set_aside_future_extract_times(existing_store(settings), feed, requested_by, reason)
    for item in done:
        console.print(
            f"{feed}: extract time {item.extract_time.isoformat()} of version {item.version}"
            f" ({escape(item.name)}) set aside; the next file is judged against the times before it"
        )
