"""Which access log a caller means: the files under a ``data_dir``, or, given the
settings, PostgreSQL when ``[serve] database_url`` is set (else the files again).

The readers and writers of :mod:`hotlist.audit` (:mod:`hotlist.audit.log`) take either;
one name each, so a caller holding the settings never has to choose (and the command
line, the server and the purge always agree on which log they write).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hotlist.config import Settings

if TYPE_CHECKING:
    from hotlist.audit.record import AccessRecord

#: A ``data_dir`` (the file log) or the settings (the log they name).
Where = Settings | Path


class Writer(Protocol):
    """What a server or a command appends through (file or PostgreSQL)."""

    def append(self, record: AccessRecord, at: dt.datetime | None = None) -> dict[str, Any]: ...

    def append_many(
        self, records: Iterable[AccessRecord], at: dt.datetime | None = None
    ) -> list[dict[str, Any]]: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


def database_url(where: Where) -> str | None:
    return where.serve.database_url if isinstance(where, Settings) else None


def data_dir(where: Where) -> Path:
    return where.data_dir if isinstance(where, Settings) else where
