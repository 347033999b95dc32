"""PostgreSQL for the serving state shared by several ``hotlist serve`` replicas.

One way to connect (:func:`connect`), one error for a database that cannot be reached
(:class:`DatabaseUnavailable`, its message naming host, port and database, never a
password), and the schema's migrations (:mod:`hotlist.pg.migrate`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import psycopg


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached or refused us; the message says where and why."""


class SchemaNotCurrent(Exception):
    """The database's schema is older (or newer) than this hotlist; run ``hotlist db upgrade``."""


def where(url: str) -> str:
    """``host:port/db`` of a URL, for messages (no user, no password)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}{parts.path or '/'}"


def connect(url: str, *, autocommit: bool = True, **options: Any) -> psycopg.Connection[Any]:
    """A connection tagged ``hotlist`` in ``pg_stat_activity``, or :class:`DatabaseUnavailable`."""
    try:
        return psycopg.connect(
            url, autocommit=autocommit, application_name="hotlist", connect_timeout=10, **options
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot use PostgreSQL at {where(url)}: {reason}") from None
