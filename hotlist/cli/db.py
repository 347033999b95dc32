"""``hotlist db``: the PostgreSQL serving state's schema ([serve] database_url)."""

from __future__ import annotations

import typer

from hotlist.cli.common import ConfigOption, ExitCode, cells, console, fail, settings_from

app = typer.Typer(help="The PostgreSQL serving state's schema ([serve] database_url).")


def _url(config: ConfigOption) -> str:
    url = settings_from(config).serve.database_url
    if url is None:
        fail(
            "no [serve] database_url is configured: the serving state is local to data_dir"
            " and needs no schema",
            ExitCode.USAGE,
        )
    return url


@app.command()
def upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the schema (idempotent: applies only what is missing)."""
    from hotlist.pg import where
    from hotlist.pg.migrate import upgrade as run

    url = _url(config)
    done = run(url)
    for migration in done:
        console.print(f"applied {migration.version:04d} {migration.name}")
    console.print(f"the schema at {where(url)} is current" + ("" if done else " (nothing to do)"))


@app.command()
def status(config: ConfigOption = None) -> None:
    """Which migrations the database has applied, and which it lacks (exit 1 if any)."""
    from rich.table import Table

    from hotlist.pg import connect
    from hotlist.pg.migrate import applied, migrations

    url = _url(config)
    with connect(url) as con:
        have = applied(con)
    table = Table("version", "name", "state")
    missing = 0
    for migration in migrations():
        if migration.version not in have:
            state, missing = "missing", missing + 1
        elif have[migration.version] != migration.sha256:
            state, missing = "changed since applied", missing + 1
        else:
            state = "applied"
        table.add_row(*cells(f"{migration.version:04d}", migration.name, state))
    console.print(table)
    if missing:
        fail("the schema is not current: run `hotlist db upgrade`")
