"""What the API's routes depend on: the server's long-lived parts and the request's access.

:class:`Services` is built once per app (the version cache, the key cache, the access
log). :class:`Access` is built per request by the gate (:mod:`hotlist.serve.gate`): who
asks, for what, and how it ended. Routes name the data element and the outcome on it;
the gate writes it to the access log, once, with one call (:meth:`Services.log`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Header, Request

from hotlist import audit
from hotlist.audit.pg import PgAccessLogWriter
from hotlist.audit.pg_loop import LoopAppends
from hotlist.config import Settings
from hotlist.serve import consumers as reg
from hotlist.serve.registry import registry_for
from hotlist.serve.seen import PullStamps
from hotlist.serve.versions import HotlistCache

if TYPE_CHECKING:
    from hotlist.serve.replicas import Replica

logger = logging.getLogger("hotlist.serve")


class AccessLogUnavailable(Exception):
    """The access log cannot be written: nothing is answered until it can (the gate
    answers 503, unlogged, and serves nothing)."""


def _unwritable(exc: Exception) -> str:
    """Why the log cannot be written, in words a client may read (no record content:
    the exception's own text could hold a data element, so only its kind and, for a
    database that is away, where it is)."""
    from hotlist import pg

    where = str(exc) if isinstance(exc, pg.DatabaseUnavailable) else type(exc).__name__
    return f"the access log cannot be written ({where}); nothing is served until it can"


class Problem(Exception):
    """An answer other than success, as an RFC 9457 problem: status, title, detail."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True)
class Caller:
    """An authenticated person of a receiving agency, with a permitted purpose."""

    consumer: reg.Consumer
    user: str
    purpose: str
    #: The API key it was admitted with, checked again after a long poll's wait.
    key: str = field(default="", repr=False)


@dataclass
class Access:
    """One request as the access log records it (SB 34: time, data element, user,
    organization, purpose), with its outcome; fields are filled in as they become known."""

    client: str
    element: str
    user: str = "unknown"
    organization: str = "unknown"
    purpose: str = "none"
    outcome: str | None = None
    caller: Caller | None = None
    #: A batch's reads, each its own record: (data element, outcome), in the reads' order.
    reads: list[tuple[str, str]] | None = None
    logged: bool = field(default=False, repr=False)

    def record(self, outcome: str, element: str | None = None) -> audit.AccessRecord:
        return audit.AccessRecord(
            self.user, self.organization, self.purpose, element or self.element, outcome,
            "api", self.client,
        )  # fmt: skip


class AccessLogSync:
    """fsyncs the access log a few times a second instead of once per request: a crash of
    the server loses no record; a power cut at most the last ``every_s`` seconds."""

    def __init__(self, writer: audit.Writer, every_s: float = 0.2) -> None:
        self.writer = writer
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log-fsync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.writer.sync()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.every_s):
            try:
                self.writer.sync()
            except Exception as exc:  # PostgreSQL away: the next turn tries again
                if not failing:
                    logger.warning("access log sync failed, retrying: %s", exc)
                failing = True
            else:
                failing = False


class Services:
    """The server's long-lived parts, one set per app."""

    def __init__(self, settings: Settings, policy_text: str) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.versions = HotlistCache(settings.published_dir)
        # Consumers, keys, acks and pull stamps: data_dir's SQLite files, or PostgreSQL.
        self.consumers = registry_for(settings)
        self.keys = self.consumers.key_cache()
        self.stamps = PullStamps(self.consumers)
        self.access_log = audit.writer_for(settings)
        self.log_sync = AccessLogSync(self.access_log)
        #: Appends across a network are awaited on the event loop, grouped (pg_loop).
        self.log_batches: LoopAppends | None = (
            LoopAppends(self.access_log) if isinstance(self.access_log, PgAccessLogWriter) else None
        )
        self.policy_text = policy_text
        #: This process as a replica (with PostgreSQL; set when the server starts).
        self.replica: Replica | None = None
        self.freshness_limits = {
            feed: source.guards.freshness_hours
            for source in settings.sources.values()
            for feed in source.files
        }

    def close_registry(self) -> None:
        """At shutdown: stop the key cache's listener, release the registry's connections."""
        self.keys.close()
        self.consumers.close()

    def displaced(self) -> str | None:
        """Why this replica may not serve (another live process took its name), if so."""
        return None if self.replica is None else self.replica.displaced

    async def log(self, access: Access, outcome: str) -> None:
        """Write the request's access-log records (the only place the API writes them):
        one, or one per read of a granted batch, appended together;
        :class:`AccessLogUnavailable` when they cannot be written. The file log is
        written here, on the event loop (a ``write``); a log across a network through
        :attr:`log_batches`, the event loop free meanwhile."""
        if access.reads is not None and outcome.startswith("granted"):
            records = [access.record(result, element) for element, result in access.reads]
        else:
            records = [access.record(outcome)]
        try:
            if self.log_batches is None:
                self.access_log.append_many(records)
            else:
                await self.log_batches.append(records)
        except Exception as exc:
            raise AccessLogUnavailable(_unwritable(exc)) from exc
        access.logged = True

    def close_log(self) -> None:
        """At shutdown: what is pending appended, the log synced and closed."""
        if self.log_batches is not None:
            self.log_batches.stop()
        self.log_sync.stop()
        self.access_log.close()  # its segment and lock descriptors with it


# The dependencies are coroutines: FastAPI runs a plain function's dependency on a worker
# thread, a hop per dependency per request.
async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def access(request: Request) -> Access:
    found: Access = request.state.access
    return found


async def caller(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
    x_user: Annotated[str | None, Header(description="The person's username.")] = None,
    x_purpose: Annotated[str | None, Header(description="Purpose from the agency policy.")] = None,
) -> Caller:
    """The caller the gate authenticated (the headers are declared here for the schema;
    the gate has read and checked them before the body was)."""
    who = (await access(request)).caller
    if who is None:  # a route outside the gate's reach: never serve data there
        raise Problem(401, "Unauthorized", "a valid API key is required")
    return who


def still_admitted(served: Services, who: Caller) -> None:
    """Refuse (:class:`Problem`) a caller whose key was revoked or replaced since the gate
    admitted it: a long poll waits up to a minute, and what it then answers must not
    reach a key revoked meanwhile."""
    try:
        consumer = served.keys.get(who.key)
    except reg.KeysUnavailable as exc:
        raise Problem(503, "Service Unavailable", str(exc)) from None
    if consumer is None or consumer.revoked_at:
        raise Problem(
            401, "Unauthorized", "this API key was revoked or replaced while the request waited"
        )
