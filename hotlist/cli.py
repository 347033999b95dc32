"""The ``hotlist`` command line.

Commands that need no orchestration (status, lookup, audit) never import Prefect: a cold
Prefect start costs 14-28 s here. ``ingest`` runs as a tracked Prefect flow run when a
Prefect API is configured (PREFECT_API_URL) or ``--prefect`` is given, and otherwise runs
the same steps in-process, untracked, and says so.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hotlist.config import ConfigError, Settings, is_immigration_purpose, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])
audit_app = typer.Typer(no_args_is_help=True, help="The SB 34 access log.")
app.add_typer(audit_app, name="audit")
report_app = typer.Typer(no_args_is_help=True, help="Deletion reports for MOU compliance review.")
app.add_typer(report_app, name="report")
consumers_app = typer.Typer(no_args_is_help=True, help="Patrol systems that pull the hotlist.")
app.add_typer(consumers_app, name="consumers")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML configuration (default: $HOTLIST_CONFIG, else built-in defaults).",
    ),
]


class SourceName(StrEnum):
    svs = "svs"
    ncic = "ncic"


def _since(value: str | None) -> dt.datetime | None:
    """A --since date (YYYY-MM-DD, UTC), or exit 2 saying what is wrong with it."""
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    except ValueError:
        err.print(f"[red]--since must be a date like 2026-11-22, not {escape(value)!r}[/red]")
        raise typer.Exit(2) from None


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


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
    from hotlist.ingest import IngestFailed, Rejection, describe, ingest_source
    from hotlist.sources import FetchError

    settings = _settings(config)
    tracked = prefect if prefect is not None else bool(os.environ.get("PREFECT_API_URL"))
    if tracked:
        from flows.ingest_then_purge import ingest_then_purge

        states = ingest_then_purge(
            source.value, str(config) if config else None, approve_mass_removal
        )
        for name, state in zip((f"ingest-{source.value}", "purge"), states, strict=True):
            if state is None:
                continue
            if not state.is_completed():
                err.print(f"[red]{name} flow run {state.name}:[/red] {escape(str(state.message))}")
            else:
                console.print(f"{name} flow run completed: {state.result()}")
        if not all(state is None or state.is_completed() for state in states):
            raise typer.Exit(1)
        return
    err.print("[dim]no Prefect API configured: running in-process, untracked (see README)[/dim]")
    try:
        outcomes = ingest_source(settings, source.value, approve_mass_removal)
    except FetchError as exc:
        err.print(f"[red]fetch failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except IngestFailed as exc:
        for outcome in exc.outcomes:
            (err if isinstance(outcome, Rejection) else console).print(escape(describe(outcome)))
            if isinstance(outcome, Rejection):
                err.print(f"  {escape(outcome.message)}")
        if any(not isinstance(o, Rejection) and o.verdict == "applied" for o in exc.outcomes):
            _purge_after_ingest(settings)
        raise typer.Exit(1) from None
    for outcome in outcomes:
        console.print(escape(describe(outcome)))
    if not outcomes:
        console.print("nothing new upstream")
        return
    _purge_after_ingest(settings)


def _purge_after_ingest(settings: Settings) -> None:
    """As the flows do: publish the new version and erase what it removed, verified."""
    from hotlist.purge import PurgeIncomplete, default_prefect_home
    from hotlist.purge import purge as run_purge

    try:
        result = run_purge(settings, default_prefect_home(), list(settings.purge.scan_paths))
    except PurgeIncomplete as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"purge run {result.run_id}: {result.purged} records purged; {result.verification.summary()}"
    )


@app.command()
def status(
    config: ConfigOption = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Per feed: version, entries, last file, age, fresh or stale, quarantined rows."""
    from hotlist.status import feed_statuses

    settings = _settings(config)
    statuses = feed_statuses(settings)
    if as_json:
        print(
            json.dumps(
                [
                    {**s.__dict__, "applied_at": s.applied_at.isoformat() if s.applied_at else None}
                    for s in statuses
                ],
                indent=2,
            )
        )
        return
    table = Table(title="hotlist status")
    for col in (
        "source",
        "feed",
        "version",
        "entries",
        "quarantined",
        "last file",
        "age",
        "freshness",
        "last event",
    ):
        table.add_column(col)
    for s in statuses:
        age = "never" if s.age_hours is None else f"{s.age_hours:.1f} h"
        fresh = "[red]STALE[/red]" if s.stale else "[green]fresh[/green]"
        table.add_row(
            s.source,
            s.feed,
            str(s.version or "-"),
            str(s.entries),
            str(s.quarantined),
            s.last_file or "-",
            age,
            f"{fresh} (limit {s.freshness_hours:g} h)",
            s.last_event or "-",
        )
    console.print(table)
    for s in statuses:
        if s.last_error:
            err.print(f"[red]{s.feed}:[/red] {escape(s.last_error)}")
    _consumer_lag(settings)
    if any(s.stale for s in statuses):
        raise typer.Exit(3)


def _consumer_lag(settings: Settings) -> None:
    from hotlist.serve import consumers as reg
    from hotlist.store.state import read_state

    if not reg.registry_path(settings.data_dir).exists():
        return
    current = int(read_state(settings.data_dir).get("hotlist_version", 0))
    table = Table(title=f"patrol copies (hotlist version {current})")
    for col in ("consumer", "agency", "acked version", "lag (versions)", "acked at"):
        table.add_column(col)
    for c in reg.all_consumers(settings.data_dir):
        if c.revoked_at or not c.agency_kind.may_receive:
            continue
        lag = "never pulled" if c.acked_version is None else str(current - c.acked_version)
        table.add_row(c.name, c.agency_ori, str(c.acked_version or "-"), lag, c.acked_at or "-")
    console.print(table)


@app.command()
def lookup(
    plate: Annotated[str, typer.Argument(help="The plate to look up (normalized like the lists).")],
    user: Annotated[str, typer.Option("--user", help="Your username (SB 34 access log).")],
    org: Annotated[str, typer.Option("--org", help="Your agency's ORI (SB 34 access log).")],
    purpose: Annotated[
        str, typer.Option("--purpose", help="Purpose from the agency policy's list.")
    ],
    state: Annotated[
        str | None, typer.Option("--state", help="Plate state or province code.")
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Look a plate up in every list; every lookup is written to the access log."""
    from hotlist import audit
    from hotlist.lookup import find_hits
    from hotlist.status import feed_statuses

    settings = _settings(config)
    element = f"plate {plate}" + (f" state {state}" if state else "")
    refusal = None
    if is_immigration_purpose(purpose):
        refusal = "refused: immigration enforcement is never a permitted purpose (SB 54)"
    elif purpose not in settings.access.purposes:
        refusal = (
            f"refused: purpose not in the agency policy ({', '.join(settings.access.purposes)})"
        )
    if refusal:
        audit.append(
            settings.data_dir, audit.AccessRecord(user, org, purpose, element, refusal, "cli")
        )
        err.print(f"[red]{escape(refusal)}[/red]")
        raise typer.Exit(4)
    hits = find_hits(settings.data_dir, plate, state)
    audit.append(
        settings.data_dir,
        audit.AccessRecord(user, org, purpose, element, f"granted: {len(hits)} hits", "cli"),
    )
    stale = [f"{s.feed}" for s in feed_statuses(settings) if s.stale]
    if as_json:
        print(json.dumps({"hits": [h.as_dict() for h in hits], "stale_feeds": stale}, indent=2))
        return
    if stale:
        err.print(
            f"[yellow]warning: stale feeds {', '.join(stale)}: they may miss recent changes[/yellow]"
        )
    if not hits:
        console.print("no hits")
        return
    table = Table(title=f"{len(hits)} hit(s)")
    for col in ("list", "source", "record id", "plate", "state", "date", "ori", "description"):
        table.add_column(col)
    for h in hits:
        table.add_row(
            h.list,
            h.source,
            h.record_id or f"entry {h.entry_id}",
            h.plate,
            h.state,
            h.record_date.isoformat(),
            h.ori or "-",
            h.description,
        )
    console.print(table)


@audit_app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check the access log's hash chain; exit 1 naming the first broken record."""
    from hotlist import audit

    result = audit.verify_chain(_settings(config).data_dir)
    if result.ok:
        console.print(f"access log intact: {result.records} records")
        return
    err.print(f"[red]access log tampered:[/red] {escape(str(result.problem))}")
    raise typer.Exit(1)


PrefectHomeOption = Annotated[
    Path | None,
    typer.Option(help="Prefect's home to verify too (default: $PREFECT_HOME, else ~/.prefect)."),
]


def _nics(nic: list[str], nic_file: Path | None) -> list[str]:

    values = list(nic)
    if nic_file is not None:
        values += [
            ln.strip()
            for ln in nic_file.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")
        ]
    bad = [v for v in values if len(v) != 10 or not v[0].isalpha() or not v[1:].isdigit()]
    if bad:
        err.print(
            f"[red]not a NIC (a letter and 9 digits):[/red] {len(bad)} value(s), first at position {values.index(bad[0]) + 1}"
        )
        raise typer.Exit(2)
    return sorted({v.upper() for v in values}) if values else []


@app.command()
def purge(
    config: ConfigOption = None,
    nic: Annotated[list[str], typer.Option("--nic", help="NIC to purge now (repeatable).")] = [],  # noqa: B006
    nic_file: Annotated[Path | None, typer.Option(help="File of NICs, one per line.")] = None,
    reason: Annotated[
        str | None, typer.Option(help="Why (entered in error, court order, ...).")
    ] = None,
    requested_by: Annotated[str | None, typer.Option(help="Who asked for the purge.")] = None,
    lift: Annotated[
        bool, typer.Option("--lift", help="Lift a manual purge: the records may load again.")
    ] = False,
    prefect_home: PrefectHomeOption = None,
) -> None:
    """Erase every pending removal from every local copy and verify it; or purge NICs by hand."""
    from hotlist.purge import PurgeIncomplete, default_prefect_home, lift_purge, manual_purge
    from hotlist.purge import purge as run_purge

    settings = _settings(config)
    home = prefect_home or default_prefect_home()
    nics = _nics(nic, nic_file)
    try:
        if lift:
            if not nics or not requested_by:
                err.print("[red]--lift needs --nic (or --nic-file) and --requested-by[/red]")
                raise typer.Exit(2)
            lifted = lift_purge(settings, nics, requested_by)
            console.print(
                f"lifted {lifted} manual purge(s); the next ingest may load these records again"
            )
            return
        if nics:
            if not reason or not requested_by:
                err.print("[red]a manual purge needs --reason and --requested-by[/red]")
                raise typer.Exit(2)
            result = manual_purge(settings, nics, reason, requested_by, home)
        else:
            result = run_purge(settings, home, list(settings.purge.scan_paths))
    except PurgeIncomplete as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"purge run {result.run_id}: {result.purged} records purged, {result.files_erased} files erased;"
        f" verification {result.verification.summary()}"
    )
    if result.report:
        console.print(f"report: {result.report}")


@app.command()
def verify(config: ConfigOption = None, prefect_home: PrefectHomeOption = None) -> None:
    """Forensic check: no trace of any removed record in any file; exit 1 naming the places."""
    from hotlist.purge import default_prefect_home
    from hotlist.verify import verify as run_verify

    settings = _settings(config)
    result = run_verify(
        settings.data_dir,
        prefect_home or default_prefect_home(),
        [],
        extra_roots=list(settings.purge.scan_paths),
    )
    for finding in result.findings:
        err.print(f"[red]{escape(finding.place)}[/red]: {escape(finding.problem)}")
    console.print(result.summary())
    if not result.ok:
        raise typer.Exit(1)


class ReportFormat(StrEnum):
    html = "html"
    csv = "csv"
    json = "json"


@report_app.command("deletions")
def report_deletions(
    config: ConfigOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only removals detected since (YYYY-MM-DD).")
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.html,
    out: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Every removed record: why, when detected, when purged, outstanding copies, proof."""

    from hotlist.reports import deletion_report, render

    settings = _settings(config)
    start = _since(since)
    rows, summary = deletion_report(settings, since=start)
    text = render(rows, summary, fmt.value, "Deletion report")
    if out:
        out.write_text(text)
        console.print(f"wrote {out}")
    else:
        print(text)


@report_app.command("lookup")
def report_lookup(
    plate: Annotated[str, typer.Argument(help="Plate to look for among removed records.")],
    state: Annotated[str, typer.Option("--state", help="Plate state or province code.")],
    user: Annotated[str, typer.Option("--user", help="Your username (access log).")],
    org: Annotated[str, typer.Option("--org", help="Your agency's ORI (access log).")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Was this plate removed? Answered from keyed hashes; the plate itself is not kept."""
    import duckdb

    from hotlist import audit
    from hotlist import normalize as norm
    from hotlist.keyed import PlateHasher
    from hotlist.store import control_path

    settings = _settings(config)
    digest = PlateHasher(settings.data_dir)(norm.plate_value(plate), norm.state_value(state))
    con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
    try:
        rows = con.execute(
            "SELECT feed, list, record_id, reason, detected_at, purged_at FROM tombstones"
            " WHERE keyed_hash = ? ORDER BY detected_at",
            [digest],
        ).fetchall()
    finally:
        con.close()
    audit.append(
        settings.data_dir,
        audit.AccessRecord(
            user,
            org,
            "deletion-report-lookup",
            f"plate {plate} state {state}",
            f"granted: {len(rows)} removals",
            "cli",
        ),
    )
    if as_json:
        keys = ("feed", "list", "record_id", "reason", "detected_at", "purged_at")
        print(json.dumps([dict(zip(keys, map(str, r), strict=True)) for r in rows], indent=2))
        return
    if not rows:
        console.print("no removal of this plate on record")
        return
    table = Table(title=f"{len(rows)} removal(s)")
    for col in ("feed", "list", "record id", "reason", "detected", "purged"):
        table.add_column(col)
    for feed, lst, rid, why, detected, purged in rows:
        table.add_row(feed, lst, rid or "-", why, str(detected), str(purged or "outstanding"))
    console.print(table)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
) -> None:
    """Serve the pull and lookup API to registered patrol systems."""
    from hotlist.serve.app import serve as run

    run(_settings(config), host, port)


@consumers_app.command("add")
def consumers_add(
    name: Annotated[str, typer.Argument(help="The consumer's name (a patrol system).")],
    agency_ori: Annotated[str, typer.Option(help="The agency's ORI.")],
    agency_name: Annotated[str, typer.Option(help="The agency's name.")],
    agency_kind: Annotated[
        str, typer.Option(help="ca-local, ca-state, federal, out-of-state or private.")
    ],
    key_file: Annotated[
        Path | None, typer.Option(help="Write the key here (mode 0600) instead of printing it.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Register a consumer; its API key is shown once (only its hash is kept)."""
    from hotlist.serve import consumers as reg

    try:
        kind = reg.AgencyKind(agency_kind)
    except ValueError:
        err.print(
            f"[red]--agency-kind must be one of {', '.join(k.value for k in reg.AgencyKind)}[/red]"
        )
        raise typer.Exit(2) from None
    try:
        key = reg.add(_settings(config).data_dir, name, agency_ori, agency_name, kind)
    except reg.ConsumerError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    if not kind.may_receive:
        err.print(
            f"[yellow]{kind.value} agencies are registered but refused all data (SB 34)[/yellow]"
        )
    _deliver_key(key, key_file)


def _deliver_key(key: str, key_file: Path | None) -> None:
    if key_file is None:
        console.print(key)
        return
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    console.print(f"key written to {key_file}")


@consumers_app.command("list")
def consumers_list(config: ConfigOption = None) -> None:
    """Every consumer, its agency, and the hotlist version it last confirmed."""
    from hotlist.serve import consumers as reg
    from hotlist.store.state import read_state

    settings = _settings(config)
    current = read_state(settings.data_dir).get("hotlist_version", 0)
    table = Table(title="consumers")
    for col in ("name", "agency", "kind", "status", "acked version", "lag", "acked at"):
        table.add_column(col)
    for c in reg.all_consumers(settings.data_dir):
        lag = "-" if c.acked_version is None else str(current - c.acked_version)
        table.add_row(
            c.name, f"{c.agency_name} ({c.agency_ori})", c.agency_kind.value,
            "revoked" if c.revoked_at else "active", str(c.acked_version or "-"), lag, c.acked_at or "-",
        )  # fmt: skip
    console.print(table)


@consumers_app.command("revoke")
def consumers_revoke(name: str, config: ConfigOption = None) -> None:
    """Revoke a consumer's key: its requests are refused from now on."""
    from hotlist.serve import consumers as reg

    try:
        reg.revoke(_settings(config).data_dir, name)
    except reg.ConsumerError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"revoked {name}")


@consumers_app.command("rotate")
def consumers_rotate(
    name: str,
    key_file: Annotated[
        Path | None, typer.Option(help="Write the new key here (mode 0600).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Replace a consumer's key; the old one stops working at once."""
    from hotlist.serve import consumers as reg

    try:
        key = reg.rotate(_settings(config).data_dir, name)
    except reg.ConsumerError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    _deliver_key(key, key_file)


@app.command()
def pull(
    server: Annotated[str, typer.Option(help="The hotlist API, e.g. http://127.0.0.1:8765")],
    key_file: Annotated[Path, typer.Option(help="File holding this consumer's API key.")],
    user: Annotated[str, typer.Option(help="The username on whose behalf the copy is kept.")],
    purpose: Annotated[str, typer.Option(help="Purpose from the agency policy.")],
    out: Annotated[Path, typer.Option(help="Directory of the local copy.")],
) -> None:
    """Bring a local copy up to date (delta, or full when too far behind) and acknowledge it."""
    from hotlist.serve.client import PullError
    from hotlist.serve.client import pull as run

    try:
        result = run(server, key_file.read_text().strip(), user, purpose, out)
    except PullError as exc:
        err.print(f"[red]pull refused:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    kind = "full version" if result.full else "delta"
    console.print(
        f"now at version {result.version} ({kind}: {result.upserts} upserts, {result.removals} removals;"
        f" {result.entries} entries)"
    )


@audit_app.command("export")
def audit_export(
    config: ConfigOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only records from this date (YYYY-MM-DD) on.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the CSV here instead of standard output.")
    ] = None,
) -> None:
    """The access log as CSV for auditors: time, user, organization, purpose, data element, outcome."""
    import csv
    import datetime as dt
    import io

    from hotlist import audit

    start = _since(since)
    columns = [
        "seq",
        "time",
        "user",
        "organization",
        "purpose",
        "data_element",
        "outcome",
        "channel",
        "client",
        "hash",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for record in audit.records(_settings(config).data_dir):
        if start is None or dt.datetime.fromisoformat(record["time"]) >= start:
            writer.writerow(record)
            count += 1
    if out is None:
        print(buffer.getvalue(), end="")
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="") as fh:
        fh.write(buffer.getvalue())
    err.print(f"{count} access records written to {out}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its files.")] = Path(
        "demo-data"
    ),
) -> None:
    """Generate day-1 and day-2 sample files and run both ingests through Prefect."""
    import gc

    from hotlist.demo import run_demo

    code = run_demo(workdir, console)
    gc.collect()  # free the failed run's traceback (and the DuckDB objects it holds) now
    sys.exit(code)


@app.command("reset-clock")
def reset_clock(
    feed: Annotated[str, typer.Argument(help="The feed: svs, sfr, slr or ncic.")],
    requested_by: Annotated[str, typer.Option("--requested-by", help="Who asks (logged).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (logged).")],
    config: ConfigOption = None,
) -> None:
    """Set aside a future extract time that was applied (a bad upstream clock), so real files
    are no longer refused as replays; logged with who and why."""
    from hotlist.feed_clock import ClockError, set_aside_future_extract_times

    settings = _settings(config)
    feeds = sorted(f for source in settings.sources.values() for f in source.files)
    if feed not in feeds:
        err.print(f"[red]no feed {escape(feed)!r} is configured; feeds: {', '.join(feeds)}[/red]")
        raise typer.Exit(2)
    try:
        done = set_aside_future_extract_times(settings.data_dir, feed, requested_by, reason)
    except ClockError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    for item in done:
        console.print(
            f"{feed}: extract time {item.extract_time.isoformat()} of version {item.version}"
            f" ({escape(item.name)}) set aside; the next file is judged against the times before it"
        )
