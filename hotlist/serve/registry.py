"""The consumer registry wherever it lives: one interface, two places.

Without ``[serve] database_url`` the registry is local to ``data_dir`` (SQLite files in
``data_dir/serve``: one machine, the demo), exactly as :mod:`hotlist.serve.consumers` and
:mod:`hotlist.serve.seen` keep it. With it, consumers, key hashes, revocations, acks and
pull stamps live in PostgreSQL (:mod:`hotlist.serve.registry_pg`), shared by every
``hotlist serve`` replica and the command line. Callers ask :func:`registry_for` and never
learn which: the API, ``hotlist consumers``, ``hotlist status`` and the deletion report.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from hotlist.config import Settings
from hotlist.serve import consumers as local
from hotlist.serve import seen
from hotlist.serve.consumers import AgencyKind, Consumer


class KeyLookup(Protocol):
    """The API's consumers by key, without a query per request."""

    def get(self, key: str) -> Consumer | None:
        """The key's consumer (revoked ones too: the gate says why it refuses); None for
        an unknown key; :class:`~hotlist.serve.consumers.KeysUnavailable` when the
        server cannot tell which keys are valid now."""
        ...

    def close(self) -> None: ...


class Registry(Protocol):
    """Who may pull the hotlist, and what each copy holds."""

    def add(self, name: str, ori: str, agency_name: str, kind: AgencyKind) -> str:
        """Register a consumer; return its API key (shown once, stored hashed)."""
        ...

    def rotate(self, name: str) -> str:
        """Replace an active consumer's key; return the new one."""
        ...

    def revoke(self, name: str) -> None: ...

    def all_consumers(self) -> list[Consumer]: ...

    def by_key(self, key: str) -> Consumer | None: ...

    def ack(self, key: str, version: int) -> bool:
        """The consumer whose active key is ``key`` now holds ``version`` (never moves
        backwards; each advance kept). False, nothing recorded, for a key revoked or
        replaced meanwhile."""
        ...

    def ack_history(self) -> dict[str, list[tuple[int, str]]]:
        """Per consumer, its advancing acknowledgements: (version, time), oldest first."""
        ...

    def stamp(self, consumer: str, at: str) -> None:
        """A pull at ``at`` (ISO 8601 UTC); the stamp keeps the latest."""
        ...

    def last_pulls(self) -> dict[str, dt.datetime]: ...

    def key_cache(self) -> KeyLookup:
        """The API's key cache over this registry (one per server)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class SqliteRegistry:
    """The local registry: ``data_dir/serve/consumers.sqlite`` and ``last_seen.sqlite``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def add(self, name: str, ori: str, agency_name: str, kind: AgencyKind) -> str:
        return local.add(self.data_dir, name, ori, agency_name, kind)

    def rotate(self, name: str) -> str:
        return local.rotate(self.data_dir, name)

    def revoke(self, name: str) -> None:
        local.revoke(self.data_dir, name)

    def all_consumers(self) -> list[Consumer]:
        return local.all_consumers(self.data_dir)

    def by_key(self, key: str) -> Consumer | None:
        return local.by_key(self.data_dir, key)

    def ack(self, key: str, version: int) -> bool:
        return local.ack(self.data_dir, key, version)

    def ack_history(self) -> dict[str, list[tuple[int, str]]]:
        return local.ack_history(self.data_dir)

    def stamp(self, consumer: str, at: str) -> None:
        seen.stamp(self.data_dir, consumer, at)

    def last_pulls(self) -> dict[str, dt.datetime]:
        return seen.last_pulls(self.data_dir)

    def key_cache(self) -> KeyLookup:
        return local.KeyCache(self.data_dir)

    def close(self) -> None:
        """Nothing held open: each operation opens and closes its file."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def registry_for(settings: Settings) -> Registry:
    """The registry the configuration names: PostgreSQL with ``[serve] database_url``
    (its schema must be current, else :class:`~hotlist.pg.SchemaNotCurrent`), else the
    SQLite files of ``data_dir``."""
    if settings.serve.database_url is not None:
        from hotlist.serve.registry_pg import PgRegistry

        return PgRegistry(settings.serve.database_url)
    return SqliteRegistry(settings.data_dir)


def has_registry(settings: Settings) -> bool:
    """Whether a registry may hold consumers without opening it: always for PostgreSQL;
    locally, once its file exists (reading would create it)."""
    return (
        settings.serve.database_url is not None or local.registry_path(settings.data_dir).exists()
    )
