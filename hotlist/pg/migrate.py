"""The serving state's schema, created and migrated by the project: ``hotlist db upgrade``.

Plain versioned SQL (``migrations/NNNN_name.sql``), applied in order, each in its own
transaction, recorded with its SHA-256 in ``hotlist_schema_migrations``. An advisory lock
serializes two upgrades started at once; a migration already applied is skipped, so an
upgrade is idempotent; one whose file changed after it was applied is refused (the
database would no longer be what the files say).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from hotlist.pg import SchemaNotCurrent, connect

#: Any fixed key: the advisory lock every ``hotlist db upgrade`` takes.
LOCK_KEY = 0x686F746C6973  # "hotlis"

_LEDGER = """
CREATE TABLE IF NOT EXISTS hotlist_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """Every migration shipped with this hotlist, oldest first."""
    found = []
    for entry in resources.files("hotlist.pg").joinpath("migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number, _, rest = name.partition("_")
        found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if len({m.version for m in found}) != len(found):
        raise RuntimeError("two migrations share a version number")
    return found


def applied(con: psycopg.Connection[Any]) -> dict[int, str]:
    """version -> sha256 of what the database has applied (empty for a new database)."""
    exists = con.execute("SELECT to_regclass('hotlist_schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = con.execute("SELECT version, sha256 FROM hotlist_schema_migrations").fetchall()
    return {int(v): str(h) for v, h in rows}


def upgrade(url: str) -> list[Migration]:
    """Apply what is missing; return what was applied now (nothing when current)."""
    done: list[Migration] = []
    with connect(url) as con:
        con.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            con.execute(_LEDGER)
            have = applied(con)
            for migration in migrations():
                if migration.version in have:
                    if have[migration.version] != migration.sha256:
                        raise SchemaNotCurrent(
                            f"migration {migration.version:04d} ({migration.name}) was changed"
                            " after this database applied it; restore the file as released"
                        )
                    continue
                with con.transaction():
                    con.execute(migration.sql.encode())
                    con.execute(
                        "INSERT INTO hotlist_schema_migrations (version, name, sha256)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.sha256),
                    )
                done.append(migration)
        finally:
            con.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return done


def require_current(con: psycopg.Connection[Any]) -> None:
    """Refuse a database whose schema is not exactly this hotlist's (servers check at start)."""
    have = applied(con)
    wanted = {m.version: m.sha256 for m in migrations()}
    missing = sorted(set(wanted) - set(have))
    newer = sorted(set(have) - set(wanted))
    if missing:
        raise SchemaNotCurrent(
            f"the database lacks migration(s) {', '.join(f'{v:04d}' for v in missing)}:"
            " run `hotlist db upgrade`"
        )
    if newer:
        raise SchemaNotCurrent(
            f"the database has migration(s) {', '.join(f'{v:04d}' for v in newer)} that this"
            " hotlist does not know: it was upgraded by a newer release; run that release"
        )
