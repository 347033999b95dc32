"""``hotlist serve`` (the patrol API) and ``hotlist pull`` (its reference client)."""

from __future__ import annotations

from enum import StrEnum
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
    warn,
)

app = typer.Typer()


class CopyFormat(StrEnum):
    """The formats of ``hotlist.serve.client.COPY_FORMATS``."""

    parquet = "parquet"
    lines = "lines"


AllowPlainHttp = Annotated[
    bool,
    typer.Option(
        "--allow-plain-http",
        help="Allow plain HTTP to or from an address other than loopback: only where TLS"
        " ends in front of it on the same host (docs/api.md, TLS).",
    ),
]


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on (loopback by default). Any other address needs"
            " --certfile and --keyfile (HTTPS), or --allow-plain-http. Behind nginx on this"
            " host, keep 127.0.0.1 and give each replica its own --port; behind a proxy on"
            " another host, serve HTTPS here too and have the proxy verify it."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    certfile: Annotated[
        Path | None,
        typer.Option(
            help="Serve HTTPS (TLS 1.2+) with this PEM certificate, then its chain"
            " (else [serve] certfile)."
        ),
    ] = None,
    keyfile: Annotated[
        Path | None,
        typer.Option(help="The certificate's PEM private key, mode 0600 (else [serve] keyfile)."),
    ] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option(
            help="Require client certificates issued by this CA (PEM), mutual TLS: a client"
            " without one is refused at the handshake (else [serve] client_ca)."
        ),
    ] = None,
    allow_plain_http: AllowPlainHttp = False,
    name: Annotated[
        str | None,
        typer.Option(
            help="This replica's name in PostgreSQL ([serve] database_url); default"
            " <hostname>:<port>. Each replica needs its own."
        ),
    ] = None,
) -> None:
    """Serve the pull and lookup API to registered patrol systems: HTTPS with a
    certificate, plain HTTP on loopback only."""
    from hotlist.serve.app import serve as run
    from hotlist.serve.tls import plain_listen_refusal, server_tls

    settings = settings_from(config)
    # Consumers are registered (``consumers add`` creates data_dir) before anything is
    # served; a data_dir that does not exist is a mistyped one, not an empty hotlist.
    existing_data_dir(settings)
    if (certfile is None) != (keyfile is None):
        fail("--certfile and --keyfile go together: give both, or neither", ExitCode.USAGE)
    if certfile is None:
        certfile, keyfile = settings.serve.certfile, settings.serve.keyfile
    client_ca = client_ca or settings.serve.client_ca
    if certfile is None or keyfile is None:
        if client_ca is not None:
            fail("--client-ca (mutual TLS) needs --certfile and --keyfile", ExitCode.USAGE)
        refusal = None if allow_plain_http else plain_listen_refusal(host)
        if refusal is not None:
            fail(refusal, ExitCode.USAGE)
        run(settings, host, port, name=name, allow_plain_http=allow_plain_http)
        return
    if allow_plain_http:
        fail("--allow-plain-http with a certificate: it serves HTTPS, drop one", ExitCode.USAGE)
    tls = server_tls(certfile, keyfile, client_ca)
    for warning in tls.warnings:
        warn(warning)
    run(settings, host, port, tls.context, name=name)


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
    copy_format: Annotated[
        CopyFormat | None,
        typer.Option(
            help="lines: OUT/hotlist.lines, fixed-width records each delta edits in place"
            " (its cost follows the delta, not the copy; docs/api.md). parquet:"
            " OUT/hotlist.parquet, rewritten by each delta. Default: the format OUT"
            " already holds; lines for a new copy.",
            show_default=False,
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            help="Verify an https:// server against this CA certificate (PEM) instead of"
            " the system's trusted CAs."
        ),
    ] = None,
    client_cert: Annotated[
        Path | None,
        typer.Option(help="Present this certificate (PEM) to a server that requires one."),
    ] = None,
    client_key: Annotated[
        Path | None, typer.Option(help="The client certificate's PEM private key, mode 0600.")
    ] = None,
    allow_plain_http: AllowPlainHttp = False,
) -> None:
    """Bring a local copy up to date (delta, or full when too far behind) and acknowledge it.

    The server is https:// (verified); plain http:// only to loopback."""
    from hotlist.serve.client import PullResult, Transport
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
            f" {result.removals} removals; {result.entries} entries; applied in"
            f" {result.applied_s:.2f} s, acknowledged in {result.acked_s:.2f} s)"
        )

    transport = Transport(ca_file, client_cert, client_key, allow_plain_http)
    user = text_option(user, "--user")
    chosen = None if copy_format is None else copy_format.value
    if follow:
        _follow(server, key, user, purpose, out, wait, report, transport, chosen)
        return
    report(run(server, key, user, purpose, out, transport=transport, copy_format=chosen))


def _follow(
    server: str,
    key: str,
    user: str,
    purpose: str,
    out: Path,
    wait: int,
    report: Any,
    transport: Any,
    copy_format: str | None,
) -> None:
    import logging
    import signal

    from hotlist.serve.client import Follower

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    follower = Follower(server, key, user, purpose, out, wait, report, transport, copy_format)

    def stop(signum: int, frame: Any) -> None:
        follower.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    console.print(f"following {server} into {out}")
    follower.run()
    console.print("stopped")
