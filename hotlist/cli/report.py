"""``hotlist report``: deletion reports for MOU compliance review."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hotlist.cli.access_log import OrgOption, UserOption, checked_access, log_access
from hotlist.cli.common import (
    ConfigOption,
    ReportFormat,
    cells,
    console,
    existing_store,
    settings_from,
    since_option,
    writable_file_option,
    write_out,
)

app = typer.Typer(no_args_is_help=True, help="Deletion reports for MOU compliance review.")

#: The purpose logged for a reviewer's "was this plate removed?".
REPORT_LOOKUP_PURPOSE = "deletion-report-lookup"


@app.command("deletions")
def report_deletions(
    config: ConfigOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only removals detected since (YYYY-MM-DD).")
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.html,
    out: Annotated[
        Path | None, typer.Option(help="Write here (mode 0600) instead of standard output.")
    ] = None,
) -> None:
    """Every removed record: why, when detected, when purged, outstanding copies, proof."""
    from hotlist.reports import deletion_report, render

    settings = settings_from(config)
    start = since_option(since)
    writable_file_option(out, "--out")
    existing_store(settings)
    rows, summary = deletion_report(settings, since=start)
    text = render(rows, summary, fmt.value, "Deletion report")
    if out:
        write_out(out, text, "--out")
        console.print(f"wrote {out}")
    else:
        print(text)


@app.command("lookup")
def report_lookup(
    plate: Annotated[str, typer.Argument(help="Plate to look for among removed records.")],
    state: Annotated[str, typer.Option("--state", help="Plate state or province code.")],
    user: UserOption,
    org: OrgOption,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Was this plate removed? Answered from keyed hashes; the plate itself is not kept."""
    from hotlist.lookup import BadQuery, plate_query, state_query
    from hotlist.reports import REMOVAL_COLUMNS, removals_of_plate

    settings = settings_from(config)
    data_dir = existing_store(settings)
    element = f"plate {plate} state {state}"
    purpose = REPORT_LOOKUP_PURPOSE
    user, org = checked_access(settings, user, org, purpose, (purpose,), element)
    try:
        wanted, wanted_state = plate_query(plate), state_query(state)
    except BadQuery as exc:
        log_access(settings, user, org, purpose, element, f"failed: {exc}")
        raise
    rows = removals_of_plate(data_dir, wanted, wanted_state)
    log_access(settings, user, org, purpose, element, f"granted: {len(rows)} removals")
    if as_json:
        print(json.dumps([{k: str(r[k]) for k in REMOVAL_COLUMNS} for r in rows], indent=2))
        return
    if not rows:
        console.print("no removal of this plate on record")
        return
    table = Table(title=f"{len(rows)} removal(s)")
    for col in ("feed", "list", "record id", "reason", "detected", "purged"):
        table.add_column(col)
    for r in rows:
        table.add_row(*cells(
            r["feed"], r["list"], r["record_id"] or "-", r["reason"], r["detected_at"],
            r["purged_at"] or "outstanding",
        ))  # fmt: skip
    console.print(table)
