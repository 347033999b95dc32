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
    console,
    err,
    existing_data_dir,
    fail,
    settings_from,
    since_option,
)
from hotlist.cli.report import ReportFormat
from hotlist.private import write_private

app = typer.Typer(no_args_is_help=True, help="The SB 34 access log.")


@app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check every segment of the access log against its key and anchors; exit 1 naming
    what was altered, removed or cut off."""
    from hotlist import audit

    result = audit.verify_chain(existing_data_dir(settings_from(config)))
    for notice in result.notices:
        err.print(f"[yellow]notice:[/yellow] {escape(notice)}")
    if not result.ok:
        for problem in result.problems[1:]:
            err.print(f"[red]access log tampered:[/red] {escape(problem)}")
        fail(str(result.problem), ExitCode.FAILED, "access log tampered")
    console.print(
        f"access log intact: {result.records} records in {result.segments} segments,"
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
    data_dir = existing_data_dir(settings_from(config))
    buffer = io.StringIO()
    count = audit.export_csv(data_dir, buffer, start)
    if out is None:
        print(buffer.getvalue(), end="")
        return
    write_private(out, buffer.getvalue())
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
    text = audit.usage_audit(existing_data_dir(settings_from(config)), start, fmt.value)
    if out is None:
        print(text)
        return
    write_private(out, text)
    err.print(f"wrote {out}")
