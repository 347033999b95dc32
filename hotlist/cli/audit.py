"""``hotlist audit``: the SB 34 access log, checked and exported for auditors."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated

import typer

from hotlist.cli.common import (
    ConfigOption,
    ExitCode,
    console,
    err,
    existing_data_dir,
    fail,
    settings_from,
    since_option,
    writable_file_option,
    write_out,
)

app = typer.Typer(no_args_is_help=True, help="The SB 34 access log.")


@app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check the access log's hash chain; exit 1 naming the first broken record."""
    from hotlist import audit

    result = audit.verify_chain(existing_data_dir(settings_from(config)))
    if not result.ok:
        fail(str(result.problem), ExitCode.FAILED, "access log tampered")
    console.print(f"access log intact: {result.records} records")


# The columns auditors get; the export itself moves into hotlist.audit (issue #16).
EXPORT_COLUMNS = (
    "seq", "time", "user", "organization", "purpose", "data_element", "outcome", "channel",
    "client", "hash",
)  # fmt: skip


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
    """The access log as CSV for auditors: time, user, organization, purpose, data element, outcome."""
    import datetime as dt

    from hotlist import audit

    start = since_option(since)
    writable_file_option(out, "--out")
    data_dir = existing_data_dir(settings_from(config))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for record in audit.records(data_dir):
        if start is None or dt.datetime.fromisoformat(record["time"]) >= start:
            writer.writerow(record)
            count += 1
    if out is None:
        print(buffer.getvalue(), end="")
        return
    write_out(out, buffer.getvalue(), "--out")
    err.print(f"{count} access records written to {out}")
