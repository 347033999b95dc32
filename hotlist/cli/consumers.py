"""``hotlist consumers``: the patrol systems that pull the hotlist, and their keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hotlist.cli.common import (
    ConfigOption,
    ExitCode,
    cells,
    console,
    existing_data_dir,
    fail,
    settings_from,
    warn,
    writable_data_dir,
    writable_file_option,
    write_out,
)

if TYPE_CHECKING:
    from hotlist.config import Settings
    from hotlist.serve.registry import Registry

app = typer.Typer(no_args_is_help=True, help="Patrol systems that pull the hotlist.")

KeyFileOption = Annotated[
    Path | None, typer.Option(help="Write the key here (mode 0600) instead of printing it.")
]


def registry(settings: Settings, *, writes: bool) -> Registry:
    """The configured registry: PostgreSQL with ``[serve] database_url`` (data_dir is then
    not needed), else data_dir's files (created by a command that writes, else required)."""
    from hotlist.serve.registry import registry_for

    if settings.serve.database_url is None:
        (writable_data_dir if writes else existing_data_dir)(settings)
    return registry_for(settings)


def deliver_key(key: str, key_file: Path | None) -> None:
    """Print the key, or write it to a new 0600 file (replacing whatever stood there)."""
    if key_file is None:
        console.print(key)
        return
    write_out(key_file, key + "\n", "--key-file")
    console.print(f"key written to {key_file}")


@app.command("add")
def consumers_add(
    name: Annotated[str, typer.Argument(help="The consumer's name (a patrol system).")],
    agency_ori: Annotated[str, typer.Option(help="The agency's ORI.")],
    agency_name: Annotated[str, typer.Option(help="The agency's name.")],
    agency_kind: Annotated[
        str, typer.Option(help="ca-local, ca-state, federal, out-of-state or private.")
    ],
    key_file: KeyFileOption = None,
    config: ConfigOption = None,
) -> None:
    """Register a consumer; its API key is shown once (only its hash is kept)."""
    from hotlist.serve import consumers as reg

    try:
        kind = reg.AgencyKind(agency_kind)
    except ValueError:
        kinds = ", ".join(k.value for k in reg.AgencyKind)
        fail(f"--agency-kind must be one of {kinds}", ExitCode.USAGE)
    # The key is shown once: where it goes is checked before the consumer exists.
    writable_file_option(key_file, "--key-file")
    with registry(settings_from(config), writes=True) as consumers:
        key = consumers.add(name, agency_ori, agency_name, kind)
    if not kind.may_receive:
        warn(f"{kind.value} agencies are registered but refused all data (SB 34)")
    deliver_key(key, key_file)


@app.command("list")
def consumers_list(config: ConfigOption = None) -> None:
    """Every consumer, its agency, and the hotlist version it last confirmed."""
    from hotlist.store.state import read_state

    settings = settings_from(config)
    with registry(settings, writes=False) as consumers:
        listed = consumers.all_consumers()
    current = read_state(settings.data_dir).get("hotlist_version", 0)
    table = Table(title="consumers")
    for col in ("name", "agency", "kind", "status", "acked version", "lag", "acked at"):
        table.add_column(col)
    for c in listed:
        lag = "-" if c.acked_version is None else str(current - c.acked_version)
        table.add_row(*cells(
            c.name, f"{c.agency_name} ({c.agency_ori})", c.agency_kind.value,
            "revoked" if c.revoked_at else "active", c.acked_version or "-", lag, c.acked_at or "-",
        ))  # fmt: skip
    console.print(table)


@app.command("revoke")
def consumers_revoke(name: str, config: ConfigOption = None) -> None:
    """Revoke a consumer's key: its requests are refused from now on."""
    with registry(settings_from(config), writes=False) as consumers:
        consumers.revoke(name)
    console.print(f"revoked {name}")


@app.command("rotate")
def consumers_rotate(
    name: str, key_file: KeyFileOption = None, config: ConfigOption = None
) -> None:
    """Replace a consumer's key; the old one stops working at once."""
    writable_file_option(key_file, "--key-file")
    with registry(settings_from(config), writes=False) as consumers:
        key = consumers.rotate(name)
    deliver_key(key, key_file)
