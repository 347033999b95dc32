"""``python -m hotlist``: the same command line as ``hotlist``."""

from hotlist.cli import app

app(prog_name="hotlist")
