"""``hotlist demo``: two days of sample files through the real pipeline, end to end.

As upstream serves them, the CLEW tables come from a web site and the NCIC extract by
secure file transfer: an embedded HTTPS server on 127.0.0.1 (a CA and a certificate
generated at run time, the CA trusted through ``ca_file``, the key pinned in ``tls_pin``)
and an embedded SFTP server beside it (generated host key pinned in a generated
known_hosts, generated client key) serve the same drop, so the demo exercises the real
client paths. Both ingest flows run through Prefect's ephemeral API (nothing to start),
each followed by a purge flow run that publishes the new hotlist version and verifies
every local copy, Prefect's own storage included. A patrol consumer pulls day 1, then
day 2, over the real HTTP API; the last deletion report shows its copy purged.

Day 2 removes, adds and changes entries, and carries one bad file (a CLEW table whose
trailer disagrees with its records): it is rejected while the others apply.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hotlist.samples import DemoDays, write_demo_days

if TYPE_CHECKING:
    from hotlist.config import Settings

FILES = ("svs.tbl", "sfr.tbl", "slr.tbl", "VEHEXTRT.txt")


def _stage(day: Path, drop: Path) -> None:
    drop.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(day / name, drop / name)  # a new upstream file: a new mtime


def _counts(result: object) -> str:
    if not isinstance(result, dict):
        return ""
    if "run_id" in result:  # a purge flow run
        return (
            f"purge run {result['run_id']}: {result['purged']} purged,"
            f" files erased: {result['files_erased']}, verified={result['verified']}"
        )
    return f"{result.get('files_applied', 0)} applied, {result.get('files_unchanged', 0)} unchanged"


def run_demo(workdir: Path, console: Console) -> int:
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, mode=0o700)
    home = workdir / "prefect-home"
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect waits 20 s for its ephemeral API by default. On a fresh machine the first
    # start reads the whole new environment from disk (cold caches) and creates its
    # database: seen to take longer there, which failed `make demo` on its first run.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    # The summary tells what happened; Prefect's own log would repeat the expected
    # rejection of day 2's bad file as a traceback.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    logging.getLogger("hotlist.sources.sftp_server").setLevel(logging.CRITICAL)
    os.environ.pop("PREFECT_API_URL", None)
    days = write_demo_days(workdir / "upstream")
    drop = workdir / "drop"
    drop.mkdir(mode=0o755)
    from hotlist.sources import https_server, sftp_server

    with (
        sftp_server.serve_directory(drop, workdir / "sftp-keys") as sftp,
        https_server.serve_directory(drop, workdir / "https-pki") as web,
    ):
        config = workdir / "hotlist.toml"
        guards = "guards = {max_removal_share = 0.5}\n"
        q = json.dumps  # a TOML basic string, whatever quotes or spaces the path holds
        ncic = (
            f"url = {q(sftp.url)}\nprivate_key = {q(str(sftp.private_key))}\n"
            f"known_hosts = {q(str(sftp.known_hosts))}\n{guards}"
        )
        svs = (
            f"url = {q(web.url)}\nca_file = {q(str(web.ca_file))}\ntls_pin = {q(web.pin)}\n{guards}"
        )
        config.write_text(f'data_dir = "data"\n[sources.svs]\n{svs}[sources.ncic]\n{ncic}')
        console.print(f"[bold]hotlist demo[/bold] in {workdir}")
        console.print(f"CLEW tables served over HTTPS at {web.url} (CA file, key pinned)")
        console.print(f"NCIC extract served over SFTP at {sftp.url} (host key pinned)")
        console.print("starting Prefect's ephemeral API (the first start takes a while)...")
        return _run(days, drop, config, home, console)


def write_report(settings: Settings) -> tuple[Path, dict[str, Any]]:
    """The demo's deletion report, under ``data_dir/reports``, mode 0600 like every report."""
    from hotlist.private import write_private
    from hotlist.reports import deletion_report, render
    from hotlist.store import private_dir

    rows, summary = deletion_report(settings)
    report = private_dir(settings.data_dir / "reports") / "deletions-demo.html"
    write_private(report, render(rows, summary, "html", "Deletion report (demo)"))
    return report, summary


def _run(days: DemoDays, drop: Path, config: Path, home: Path, console: Console) -> int:
    from flows.ingest_then_purge import ingest_then_purge
    from hotlist.config import load_settings
    from hotlist.serve import consumers as reg
    from hotlist.serve.app import serving
    from hotlist.serve.client import pull
    from hotlist.serve.registry import registry_for
    from hotlist.status import feed_statuses

    settings = load_settings(config)
    with registry_for(settings) as registry:
        key = registry.add(
            "demo-patrol", "CA0190000", "Demo Police Department", reg.AgencyKind.CA_LOCAL
        )
    runs = Table(title="flow runs (Prefect) and the patrol copy (HTTP API)")
    for col in ("day", "step", "state", "detail"):
        runs.add_column(col)
    copy = config.parent / "patrol-copy"
    exit_code = 0
    with serving(settings) as api:
        for label, day in (("day 1", days.day1), ("day 2", days.day2)):
            _stage(day, drop)
            for source in ("svs", "ncic"):
                ingested, purged = ingest_then_purge(source, str(config))
                for name, state in ((f"ingest-{source}", ingested), ("purge", purged)):
                    if state is None:
                        continue
                    completed = state.is_completed()
                    detail = _counts(state.result()) if completed else str(state.message or "")
                    # day 2's sfr.tbl is bad on purpose: that ingest run fails
                    expected = completed or (label, name) == ("day 2", "ingest-svs")
                    exit_code = exit_code or (0 if expected else 1)
                    runs.add_row(label, name, state.name, escape(detail))
            pulled = pull(api, key, "demo-officer", "patrol", copy)
            kind = "full version" if pulled.full else "delta"
            runs.add_row(
                label, "patrol pull", "Completed",
                f"version {pulled.version} ({kind}: +{pulled.upserts} -{pulled.removals}),"
                f" {pulled.entries} entries, acknowledged",
            )  # fmt: skip
    console.print(runs)
    table = Table(title="feeds after day 2")
    for col in ("feed", "version", "entries", "quarantined", "last event", "freshness"):
        table.add_column(col)
    for s in feed_statuses(settings):
        table.add_row(
            s.feed, str(s.version), str(s.entries), str(s.quarantined), s.last_event or "-",
            "STALE" if s.stale else "fresh",
        )  # fmt: skip
    console.print(table)
    report, summary = write_report(settings)
    console.print(
        f"removed records: {summary['removed_records']}, purged and verified: {summary['purged']},"
        f" still held by a patrol copy: {summary['copies_outstanding']}"
    )
    console.print(f"deletion report: {report}")
    plate = days.ncic_records["day2"][0].plate.strip()
    console.print(
        f"try:  hotlist status -c {config}\n"
        f"      hotlist lookup {plate} --user demo --org CA0190000 --purpose patrol -c {config}\n"
        f"      PREFECT_HOME={home} hotlist verify -c {config}"
    )
    return exit_code
