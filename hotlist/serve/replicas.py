"""This server as one replica among several: its row in PostgreSQL's ``replicas`` table,
and the versions the purge announces.

With ``[serve] database_url`` each ``hotlist serve`` process registers under a name
(``--name``, default ``<hostname>:<port>``) and runs a thread that

* LISTENs on ``hotlist_versions``: the purge NOTIFYs it once it has published a version
  and erased the superseded ones. The thread loads that version at once (the cache drops
  the old copy from memory), wakes the long-poll waiters, and writes the version it now
  serves, which the purge waits for (:mod:`hotlist.purge_replicas`);
* every :data:`HEARTBEAT_S` stamps its row with the time and the version it serves, and
  loads a version published without a word (one stat of ``CURRENT.json``): a lost
  notification costs at most a heartbeat;
* drops its row on a clean shutdown.

While PostgreSQL cannot be reached the thread retries every heartbeat; its heartbeat goes
stale, so the purge counts it as not serving. Even then it never answers from an erased
version: :mod:`hotlist.serve.versions` checks the shared files on every request.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from hotlist.config import ConfigError, Settings
from hotlist.pg import DatabaseUnavailable, connect, where
from hotlist.pg.migrate import require_current
from hotlist.serve.versions import HotlistCache, NoVersion

log = logging.getLogger("hotlist.serve")

#: The channel the purge announces versions on (payload: the version number).
CHANNEL = "hotlist_versions"
#: How often a replica stamps its row.
HEARTBEAT_S = 1.0
#: A replica whose last heartbeat is older than this is not serving (dead or stuck).
LIVE_S = 5.0

_REGISTER = """
INSERT INTO replicas (name, instance, serving_version) VALUES (%(name)s, %(instance)s, NULL)
ON CONFLICT (name) DO UPDATE
    SET instance = excluded.instance, serving_version = NULL, started_at = now(),
        heartbeat_at = now()
    WHERE replicas.instance = excluded.instance
       OR replicas.heartbeat_at < now() - make_interval(secs => %(live_s)s)
"""
_BEAT = """
UPDATE replicas SET heartbeat_at = now(), serving_version = %(version)s
WHERE name = %(name)s AND instance = %(instance)s
"""


def default_name(port: int) -> str:
    """``<hostname>:<port>``: unique per machine and port, the same after a restart."""
    return f"{socket.gethostname()}:{port}"


class Replica:
    """This process's registration, heartbeat and listener (one thread)."""

    def __init__(
        self,
        url: str,
        name: str,
        cache: HotlistCache,
        on_new_version: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.name = name
        self.cache = cache
        self.instance = secrets.token_hex(8)
        self.serving: int | None = None
        self.announced = 0  # the newest version the purge announced
        #: Why this process may not serve, once another live process holds its name: the
        #: purge no longer sees what this one holds, so it answers 503 until restarted.
        self.displaced: str | None = None
        self._on_new_version = on_new_version
        self._stop = threading.Event()
        self._con: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="replica-heartbeat", daemon=True)

    def start(self) -> None:
        """Register (refusing a name a live replica holds), then heartbeat and listen."""
        con = connect(self.url)
        try:
            require_current(con)
            self._register(con)
            con.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            con.close()
            raise
        self._con = con
        self._thread.start()
        log.info("replica %s registered at %s", self.name, where(self.url))

    def stop(self) -> None:
        """Stop the thread and drop this replica's row (not a stale one under its name)."""
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_S * 5)
        try:
            with connect(self.url) as con:
                con.execute(
                    "DELETE FROM replicas WHERE name = %s AND instance = %s",
                    (self.name, self.instance),
                )
        except (DatabaseUnavailable, psycopg.Error) as exc:
            log.warning("replica %s: its row stays until it is stale: %s", self.name, exc)

    def _register(self, con: psycopg.Connection[Any]) -> None:
        params = {"name": self.name, "instance": self.instance, "live_s": LIVE_S}
        if con.execute(_REGISTER, params).rowcount != 1:
            raise ConfigError(
                f"another live replica is registered as {self.name!r} in {where(self.url)};"
                " give this one another name (hotlist serve --name)"
            )

    def _run(self) -> None:
        con = self._con
        while not self._stop.is_set():
            try:
                if con is None:
                    con = connect(self.url)
                    con.execute(f"LISTEN {CHANNEL}")
                self._serve_current()
                self._beat(con)
                # Woken by an announcement, or after a heartbeat's time without one.
                for notice in con.notifies(timeout=HEARTBEAT_S, stop_after=1):
                    if notice.payload.isdigit():
                        self.announced = max(self.announced, int(notice.payload))
            except (DatabaseUnavailable, psycopg.Error) as exc:
                log.warning("replica %s: PostgreSQL: %s", self.name, str(exc).strip() or exc)
                if con is not None:
                    con.close()
                con = None
                self._stop.wait(HEARTBEAT_S)
            except Exception as exc:  # a version that cannot be loaded: next beat tries again
                log.warning("replica %s: loading the published version failed: %r", self.name, exc)
                self._stop.wait(HEARTBEAT_S)
        if con is not None:
            con.close()

    def _serve_current(self) -> None:
        """Load the version CURRENT.json names if it is not the one in memory."""
        try:
            # Announced and not yet served: read CURRENT.json past any cached attributes.
            fresh = self.announced > (self.serving or 0)
            published = int(self.cache.manifest(fresh=fresh)["version"])
        except NoVersion:
            return
        loaded = self.cache.loaded_now()
        if loaded is None or loaded.version != published:
            loaded = self.cache.current(wait=True)
            self._on_new_version()
        self.serving = loaded.version

    def _beat(self, con: psycopg.Connection[Any]) -> None:
        params = {"version": self.serving, "name": self.name, "instance": self.instance}
        if con.execute(_BEAT, params).rowcount == 1:
            return
        # The row is gone (deleted by an operator) or taken (this process was stopped for
        # longer than LIVE_S, and another took the name): register again if it is free.
        try:
            self._register(con)
        except ConfigError as exc:
            if self.displaced is None:
                log.error("replica %s: %s; serving nothing until restarted", self.name, exc)
            self.displaced = (
                f"this replica ({self.name}) lost its registration to another live process"
                " of that name: the purge cannot see what it holds, so it serves nothing;"
                " restart it under a name of its own"
            )
            return
        self.displaced = None
        con.execute(_BEAT, params)


def start_replica(
    settings: Settings, cache: HotlistCache, name: str | None, on_new_version: Callable[[], None]
) -> Replica | None:
    """This server's replica, registered and running; None without ``database_url``."""
    url = settings.serve.database_url
    if url is None:
        return None
    # A server without a port of its own (in a thread of another program): its process.
    found = name or f"{socket.gethostname()}/pid{os.getpid()}"
    replica = Replica(url, found, cache, on_new_version)
    replica.start()
    return replica
