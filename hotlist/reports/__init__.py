"""Reports for reviewers: deletion reports (MOU) and their rendering."""

from hotlist.reports.deletions import (
    COLUMNS,
    deletion_report,
    deletion_rows,
    summarize,
    verifications,
)
from hotlist.reports.removals import REMOVAL_COLUMNS, removals_of_plate
from hotlist.reports.render import render, render_html
from hotlist.reports.run import write_run_report

__all__ = [
    "COLUMNS",
    "REMOVAL_COLUMNS",
    "deletion_report",
    "deletion_rows",
    "removals_of_plate",
    "render",
    "render_html",
    "summarize",
    "verifications",
    "write_run_report",
]
