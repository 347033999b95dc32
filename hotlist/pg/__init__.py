"""PostgreSQL for the serving state shared by several ``hotlist serve`` replicas.

One way to connect (:func:`connect`), one error for a database that cannot be reached
(:class:`DatabaseUnavailable`, its message naming host, port and database, never a
password), and the schema's migrations (:mod:`hotlist.pg.migrate`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import psycopg

#: A connection that stops answering is given up after this (libpq; milliseconds, then
#: seconds), so a server's thread never hangs on a peer that vanished from the network:
#: the statement fails, and the caller reconnects or refuses.
LIVENESS: dict[str, Any] = {
    "tcp_user_timeout": 2000,
    "keepalives": 1,
    "keepalives_idle": 1,
    "keepalives_interval": 1,
    "keepalives_count": 2,
}


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
    """A connection tagged ``hotlist`` in ``pg_stat_activity``, with :data:`LIVENESS`
    (``options`` override it), or :class:`DatabaseUnavailable`."""
    settings: dict[str, Any] = {"connect_timeout": 10, **LIVENESS, **options}
    try:
        return psycopg.connect(url, autocommit=autocommit, application_name="hotlist", **settings)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot use PostgreSQL at {where(url)}: {reason}") from None
