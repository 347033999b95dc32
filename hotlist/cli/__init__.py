"""The ``hotlist`` command line.

Commands that need no orchestration (status, lookup, audit) never import Prefect: a cold
Prefect start takes many seconds. ``ingest`` runs as a tracked Prefect flow run when a
Prefect API is configured (PREFECT_API_URL) or ``--prefect`` is given, and otherwise runs
the same steps in-process, untracked, and says so.

One module per command group; each is a thin layer over the library. Commands that only
read never create ``data_dir``; exit codes are listed in :mod:`hotlist.cli.common`.
"""

from __future__ import annotations

import typer

from hotlist.cli import (
    audit,
    consumers,
    db,
    demo,
    ingest,
    lookup,
    policy,
    purge,
    report,
    serve,
    status,
    watch,
)
from hotlist.cli.common import HotlistGroup

app = typer.Typer(
    cls=HotlistGroup,
    no_args_is_help=True,
    add_completion=False,
    help=(__doc__ or "").splitlines()[0],
)
for commands in (ingest.app, status.app, lookup.app, purge.app, serve.app, demo.app, watch.app):
    app.add_typer(commands)
app.add_typer(audit.app, name="audit")
app.add_typer(report.app, name="report")
app.add_typer(consumers.app, name="consumers")
app.add_typer(policy.app, name="policy")
app.add_typer(db.app, name="db")

__all__ = ["app"]
