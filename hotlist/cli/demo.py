"""``hotlist demo``: two days of sample files through the real pipeline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hotlist.cli.common import console

app = typer.Typer()


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
