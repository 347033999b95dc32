"""``hotlist purge`` and ``hotlist verify``: erase removed records everywhere, and prove it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hotlist.cli.common import (
    ConfigOption,
    ExitCode,
    PrefectHomeOption,
    console,
    existing_data_dir,
    fail,
    problem,
    settings_from,
)
from hotlist.nic import parse_nic

app = typer.Typer()


def nics_given(nic: list[str], nic_file: Path | None) -> list[str]:
    """The NICs of ``--nic`` and ``--nic-file``, sorted and unique; exit 2 naming a bad one.

    A bad value is named by where it stands, not by what it is: a mistyped NIC may be
    half of another record's.
    """
    given = [(value, f"--nic #{i}") for i, value in enumerate(nic, start=1)]
    if nic_file is not None:
        try:
            text = nic_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read --nic-file {nic_file}: {exc}", ExitCode.USAGE)
        given += [
            (line, f"{nic_file} line {no}")
            for no, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    parsed = [(parse_nic(value), where) for value, where in given]
    bad = [where for value, where in parsed if value is None]
    if bad:
        fail(
            f"not a NIC (a letter and 9 digits): {len(bad)} value(s), the first at {bad[0]}",
            ExitCode.USAGE,
        )
    return sorted({value for value, _ in parsed if value is not None})


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
    from hotlist.purge import default_prefect_home, lift_purge, manual_purge
    from hotlist.purge import purge as run_purge

    settings = settings_from(config)
    nics = nics_given(nic, nic_file)
    # A purge changes a store that exists; of a mistyped data_dir it would verify nothing.
    existing_data_dir(settings)
    home = prefect_home or default_prefect_home()
    if lift:
        if not nics or not requested_by:
            fail("--lift needs --nic (or --nic-file) and --requested-by", ExitCode.USAGE)
        lifted = lift_purge(settings, nics, requested_by)
        console.print(
            f"lifted {lifted} manual purge(s); the next ingest may load these records again"
        )
        return
    if nics:
        if not reason or not requested_by:
            fail("a manual purge needs --reason and --requested-by", ExitCode.USAGE)
        result = manual_purge(settings, nics, reason, requested_by, home)
    else:
        result = run_purge(settings, home, list(settings.purge.scan_paths))
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

    settings = settings_from(config)
    # A data_dir that does not exist is a verification that fails (exit 1), said by verify.
    result = run_verify(
        settings.data_dir,
        prefect_home or default_prefect_home(),
        [],
        extra_roots=list(settings.purge.scan_paths),
        published=settings.published_dir,
        access_log_url=settings.serve.database_url,
    )
    for finding in result.findings:
        problem(str(finding.place), finding.problem)
    console.print(result.summary())
    if not result.ok:
        raise typer.Exit(ExitCode.FAILED)
