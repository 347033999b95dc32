"""``hotlist watch``: check the sources for a change and ingest (then purge) when one lands."""

from __future__ import annotations

import logging
import signal
from typing import Annotated, Any

import typer

from hotlist.cli.common import (
    ConfigOption,
    ExitCode,
    console,
    fail,
    settings_from,
    writable_data_dir,
)

app = typer.Typer()


@app.command()
def watch(
    config: ConfigOption = None,
    interval: Annotated[
        float | None,
        typer.Option(min=1.0, help="Seconds between checks (default: each source's poll_seconds)."),
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option(help="Watch only this source (repeatable).")
    ] = None,
) -> None:
    """Stat the sources' files every few seconds; on a change, ingest, then purge once for
    the sources that changed together. Ctrl-C or SIGTERM stops it between steps."""
    from hotlist.watch import in_process

    settings = settings_from(config)
    unknown = sorted(set(source or []) - set(settings.sources))
    if unknown:
        fail(
            f"no source {', '.join(unknown)} is configured; sources: {', '.join(sorted(settings.sources))}",
            ExitCode.USAGE,
        )
    writable_data_dir(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    watcher = in_process(settings, source, interval)

    def stop(signum: int, frame: Any) -> None:
        console.print(f"{signal.Signals(signum).name}: stopping after the step under way")
        watcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    names = ", ".join(f"{w.name} every {w.every_s:g} s" for w in watcher.watched)
    console.print(f"watching {names}")
    watcher.run()
    console.print("stopped")
