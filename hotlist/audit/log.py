"""The access log a caller means, and the one entry to it: each reader and writer here takes
a ``data_dir`` (the file log) or the settings (PostgreSQL's log when ``[serve]
database_url`` is set, else the files), and hands over to the file backend
(:mod:`~hotlist.audit.chain`, :mod:`~hotlist.audit.anchors`, :mod:`~hotlist.audit.verify`)
or to PostgreSQL's (:mod:`~hotlist.audit.pg`, :mod:`~hotlist.audit.pg_verify`). The
backends never call each other, nor this module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from hotlist.audit import pg
from hotlist.audit.anchors import Anchor, anchor_files
from hotlist.audit.chain import AccessLogWriter, append_files, file_records
from hotlist.audit.pg_verify import verify_pg
from hotlist.audit.record import AccessRecord
from hotlist.audit.verify import ChainCheck, verify_files
from hotlist.audit.where import Where, Writer, database_url
from hotlist.audit.where import data_dir as data_dir_of
from hotlist.config import Settings


def writer_for(settings: Settings, synchronous: bool = False) -> Writer:
    """The server's writer: PostgreSQL's when ``database_url`` is set, else the files'.

    ``synchronous``: each append durable before it returns (PostgreSQL; the file writer
    is made durable by ``sync``)."""
    url = settings.serve.database_url
    if url is None:
        return AccessLogWriter(settings.data_dir)
    return pg.PgAccessLogWriter(url, settings.data_dir, synchronous=synchronous)


def append(
    where: Where, record: AccessRecord, at: dt.datetime | None = None, sync: bool = True
) -> dict[str, Any]:
    """Append one record (for a process that writes once, like a CLI command)."""
    return append_many(where, [record], at, sync)[0]


def append_many(
    where: Where, records: Iterable[AccessRecord], at: dt.datetime | None = None,
    sync: bool = True,
) -> list[dict[str, Any]]:  # fmt: skip
    """Append and close: to the files of a ``data_dir``, or to the log the settings name."""
    if isinstance(where, Path):
        return append_files(where, records, at, sync)
    writer = writer_for(where, synchronous=sync)
    try:
        entries = writer.append_many(records, at)
        if sync:
            writer.sync()
        return entries
    finally:
        writer.close()


def records(where: Where, since: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every whole record, oldest first: across the file segments (torn lines skipped), or
    from PostgreSQL when the settings name it."""
    url = database_url(where)
    if url is not None:
        return pg.records(url, since)
    return file_records(data_dir_of(where), since)


def anchor(
    where: Where, place: str = "manual", con: duckdb.DuckDBPyConnection | None = None
) -> Anchor:
    """Record the chain's head now, and return it: the file log's of a ``data_dir``, or
    the one the settings name (PostgreSQL's when ``database_url`` is set).

    ``con``: the control database connection of a caller that holds the writer lock; the
    anchor is then also written there. Cheap: one tail read and one SQLite insert (or one
    head read and one insert in PostgreSQL)."""
    url = database_url(where)
    if url is not None:
        return pg.anchor(url, data_dir_of(where), place, con)
    return anchor_files(data_dir_of(where), place, con)


def verify_chain(log: Where) -> ChainCheck:
    """Check every record against the key and every anchor; read-only. ``log``: a
    ``data_dir``, or the settings (PostgreSQL's log when they name one)."""
    url = database_url(log)
    if url is not None:
        return verify_pg(url, data_dir_of(log))
    return verify_files(data_dir_of(log))
