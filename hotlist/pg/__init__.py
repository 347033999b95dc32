"""PostgreSQL for the serving state shared by several ``hotlist serve`` replicas.

One way to connect (:func:`connect`), one error for a database that cannot be reached
(:class:`DatabaseUnavailable`, its message naming host, port and database, never a
password), and the schema's migrations (:mod:`hotlist.pg.migrate`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

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
    """``host:port/db`` of a URL, for messages (no user, no password): each host of a
    list (``h1:5432,h2:5432``), a unix socket's directory (``?host=/run/postgresql``)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    hosts = parts.netloc.rpartition("@")[2] or ",".join(query.get("host", [])) or "localhost"
    default_port = (query.get("port") or ["5432"])[-1]
    places = []
    for place in hosts.split(","):
        found = _HOST_PORT.fullmatch(place)
        host, port = (found[1], found[2]) if found else (place, None)
        places.append(f"{unquote(host) or 'localhost'}:{port or default_port}")
    return f"{','.join(places)}{parts.path or '/'}"


#: One host of a URL's list, with its port if given: ``db``, ``db:5433``, ``[::1]:5433``.
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:]*)(?::(\d*))?")


def reason(exc: BaseException) -> str:
    """What went wrong, fit for a log line or a 503 answer: a statement's error is named
    by its class and SQLSTATE only, since PostgreSQL's text may quote the row or value it
    failed on ("Failing row contains (...)", "invalid input syntax ...: \"7ABC123\""),
    which can be an access record's content; an error without a SQLSTATE (the connection
    failed, or was lost) is the library's own text, which names no record."""
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate})"
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def connect(url: str, *, autocommit: bool = True, **options: Any) -> psycopg.Connection[Any]:
    """A connection tagged ``hotlist`` in ``pg_stat_activity``, with :data:`LIVENESS`
    (``options`` override it), or :class:`DatabaseUnavailable`."""
    settings: dict[str, Any] = {"connect_timeout": 10, **LIVENESS, **options}
    try:
        return psycopg.connect(url, autocommit=autocommit, application_name="hotlist", **settings)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot use PostgreSQL at {where(url)}: {reason}") from None


async def connect_async(url: str, **options: Any) -> psycopg.AsyncConnection[Any]:
    """:func:`connect` for an event loop (autocommit): the connection's round trips wait
    in the loop, not in a thread."""
    settings: dict[str, Any] = {"connect_timeout": 10, **LIVENESS, **options}
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=True, application_name="hotlist", **settings
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot use PostgreSQL at {where(url)}: {reason}") from None
