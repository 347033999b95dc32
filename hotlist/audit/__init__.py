"""The SB 34 access log: every access to hotlist data, granted or refused, one record.

A record holds the time, the data element used (the plate queried, or "full version N"),
username, organization, purpose, outcome, channel and client. Records are JSON lines in
monthly segments under ``data_dir/audit``, chained with HMAC-SHA256 under a key kept
outside that directory; the chain's head is anchored outside the log (anchors database,
control database, deletion reports, Prefect artifacts). ``hotlist audit verify`` checks
all of it. With ``[serve] database_url`` the same chain lives in PostgreSQL instead
(:mod:`hotlist.audit.pg`), shared by every replica and the command line; the readers and
writers here take the settings and go where they point (:mod:`hotlist.audit.log`).
The log is kept ``[audit] retention_months`` (default 24, at least 12) and the purge
never touches it: it records who looked, which the law requires to outlive the record.
"""

import datetime as dt

from hotlist.audit.anchors import Anchor, publish_artifact
from hotlist.audit.chain import AccessLogWriter, log_path, recover_torn_tail
from hotlist.audit.export import export_csv
from hotlist.audit.keys import GENESIS
from hotlist.audit.log import anchor, append, append_many, records, verify_chain, writer_for
from hotlist.audit.record import AccessRecord
from hotlist.audit.retention import expire, retention_months
from hotlist.audit.segments import segment_paths
from hotlist.audit.verify import ChainCheck
from hotlist.audit.where import Where, Writer


def usage_audit(where: Where, since: dt.datetime | None = None, fmt: str = "html") -> str:
    """``hotlist audit report``: the usage audit, rendered (see :mod:`hotlist.audit.usage`)."""
    from hotlist.audit.usage_render import usage_audit as run

    return run(where, since, fmt)


__all__ = [
    "GENESIS",
    "AccessLogWriter",
    "AccessRecord",
    "Anchor",
    "ChainCheck",
    "Where",
    "Writer",
    "anchor",
    "append",
    "append_many",
    "expire",
    "export_csv",
    "log_path",
    "publish_artifact",
    "records",
    "recover_torn_tail",
    "retention_months",
    "segment_paths",
    "usage_audit",
    "verify_chain",
    "writer_for",
]
