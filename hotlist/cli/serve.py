"""``hotlist serve`` (the patrol API) and ``hotlist pull`` (its reference client)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hotlist.cli.common import (
    ConfigOption,
    ExitCode,
    console,
    existing_data_dir,
    fail,
    settings_from,
    text_option,
)

app = typer.Typer()


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    name: Annotated[
        str | None,
        typer.Option(
            help="This replica's name in PostgreSQL ([serve] database_url); default"
            " <hostname>:<port>. Each replica needs its own."
        ),
    ] = None,
) -> None:
    """Serve the pull and lookup API to registered patrol systems."""
    from hotlist.serve.app import serve as run

    settings = settings_from(config)
    # Consumers are registered (``consumers add`` creates data_dir) before anything is
    # served; a data_dir that does not exist is a mistyped one, not an empty hotlist.
    existing_data_dir(settings)
    run(settings, host, port, name)


@app.command()
def pull(
    server: Annotated[str, typer.Option(help="The hotlist API, e.g. http://127.0.0.1:8765")],
    key_file: Annotated[Path, typer.Option(help="File holding this consumer's API key.")],
    user: Annotated[str, typer.Option(help="The username on whose behalf the copy is kept.")],
    purpose: Annotated[str, typer.Option(help="Purpose from the agency policy.")],
    out: Annotated[
        Path, typer.Option(help="Directory of the local copy (its files are mode 0600).")
    ],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Keep following: apply each new version as soon as it is published"
            " (long-poll), reconnect with backoff; SIGTERM or Ctrl-C stops it.",
        ),
    ] = False,
    wait: Annotated[
        int, typer.Option(min=1, max=60, help="With --follow: seconds per long-poll.")
    ] = 55,
) -> None:
    """Bring a local copy up to date (delta, or full when too far behind) and acknowledge it."""
    from hotlist.serve.client import PullResult
    from hotlist.serve.client import pull as run

    if out.exists() and not out.is_dir():
        fail(f"--out {out} is not a directory", ExitCode.USAGE)
    try:
        key = key_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read --key-file {key_file}: {exc}", ExitCode.USAGE)

    def report(result: PullResult) -> None:
        kind = "full version" if result.full else "delta"
        console.print(
            f"now at version {result.version} ({kind}: {result.upserts} upserts,"
            f" {result.removals} removals; {result.entries} entries)"
        )

    if follow:
        _follow(server, key, text_option(user, "--user"), purpose, out, wait, report)
        return
    report(run(server, key, text_option(user, "--user"), purpose, out))


def _follow(
    server: str, key: str, user: str, purpose: str, out: Path, wait: int, report: Any
) -> None:
    import logging
    import signal

    from hotlist.serve.client import Follower

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    follower = Follower(server, key, user, purpose, out, wait, report)

    def stop(signum: int, frame: Any) -> None:
        follower.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    console.print(f"following {server} into {out}")
    follower.run()
    console.print("stopped")
