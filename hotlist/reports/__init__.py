"""Reports for reviewers: deletion reports (MOU) and their rendering."""

from hotlist.reports.deletions import (
    COLUMNS,
    deletion_report,
    deletion_rows,
    summarize,
    verifications,
    write_run_report,
)
from hotlist.reports.render import render, render_html

__all__ = [
    "COLUMNS",
    "deletion_report",
    "deletion_rows",
    "render",
    "render_html",
    "summarize",
    "verifications",
    "write_run_report",
]
