"""``hotlist audit``: the SB 34 access log, checked, exported and audited for reviewers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hotlist.cli.common import (
    ConfigOption,
    ExitCode,
    ReportFormat,
    console,
    err,
    existing_data_dir,
    problem,
    settings_from,
    since_option,
    writable_file_option,
    write_out,
)

app = typer.Typer(no_args_is_help=True, help="The SB 34 access log.")


@app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check every record of the access log (its files, or PostgreSQL when
    ``[serve] database_url`` is set) against its key and anchors; exit 1 naming what was
    altered, removed or cut off."""
    from hotlist import audit

    settings = settings_from(config)
    existing_data_dir(settings)  # the key is there, whichever the log
    result = audit.verify_chain(settings)
    for notice in result.notices:
        err.print(f"[yellow]notice:[/yellow] {escape(notice)}")
    if not result.ok:
        for found in result.problems or [str(result.problem)]:
            problem("access log tampered", found)
        raise typer.Exit(ExitCode.FAILED)
    where = result.place or f"{result.segments} segments"
    console.print(
        f"access log intact: {result.records} records in {escape(where)},"
        f" {result.anchors} anchors checked"
    )


@app.command("export")
def audit_export(
    config: ConfigOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only records from this date (YYYY-MM-DD) on.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the CSV here (mode 0600) instead of standard output.")
    ] = None,
) -> None:
    """The access log as CSV for auditors: time, user, organization, purpose, data element,
    outcome (cells a spreadsheet would run as formulas are neutralized)."""
    from hotlist import audit

    start = since_option(since)
    writable_file_option(out, "--out")
    settings = settings_from(config)
    existing_data_dir(settings)
    buffer = io.StringIO()
    count = audit.export_csv(settings, buffer, start)
    if out is None:
        print(buffer.getvalue(), end="")
        return
    write_out(out, buffer.getvalue(), "--out")
    err.print(f"{count} access records written to {out}")


@app.command("report")
def audit_report(
    config: ConfigOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only accesses from this date (YYYY-MM-DD) on.")
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.html,
    out: Annotated[
        Path | None, typer.Option(help="Write here (mode 0600) instead of standard output.")
    ] = None,
) -> None:
    """Usage audit for reviewers: accesses by organization, user, purpose and outcome,
    refusals by reason, accesses over time, unusual volume and after-hours use."""
    from hotlist import audit

    start = since_option(since)
    writable_file_option(out, "--out")
    settings = settings_from(config)
    existing_data_dir(settings)
    text = audit.usage_audit(settings, start, fmt.value)
    if out is None:
        print(text)
        return
    write_out(out, text, "--out")
    err.print(f"wrote {out}")
