"""The patrol API: pull the hotlist (full or delta), look plates up, acknowledge versions.

Every request but the public pages (``/privacy-policy``, the API schema) carries
``Authorization: Bearer <key>``, ``X-User`` and ``X-Purpose``, each once. Only consumers
of California public agencies receive data (SB 34); immigration enforcement is never a
purpose (SB 54); every request, granted or refused, is written to the access log with the
data element, user, organization, purpose, outcome and client address.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from hotlist import policy
from hotlist.config import ConfigError, Settings
from hotlist.serve import heap, lookups
from hotlist.serve.deps import Problem, Services
from hotlist.serve.gate import PROBLEM, AccessGate, problem_body, validation_detail
from hotlist.serve.protocol import BoundedHeadProtocol
from hotlist.serve.replicas import default_name, start_replica
from hotlist.serve.routes import router
from hotlist.serve.tls import plain_listen_refusal
from hotlist.serve.waiters import announce

logger = logging.getLogger("hotlist.serve")


class PatrolAPI(FastAPI):
    """The API, with its lookups served by the gate straight from the server's call.

    A lookup is answered by the gate itself (:mod:`hotlist.serve.lookups`); passing it
    through FastAPI's own layers first (its telemetry check, Starlette's error and
    exception middleware) cost a tenth of a lookup's CPU for nothing the gate does not
    do: the gate logs an error, and the server answers 500 to an exception, as
    Starlette's error middleware would. (FastAPI's OpenTelemetry, were it configured,
    would not see lookups.)"""

    lane: AccessGate | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane
        if (
            lane is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in lane.direct_paths
            and not self.root_path
        ):
            scope["app"] = self
            await lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    own = settings.access.privacy_policy
    if own is not None and not own.is_file():
        raise ConfigError(
            f"[access] privacy_policy: {own} is not a file; fix the path, or remove the key"
            " to serve the policy built from this configuration"
        )
    services = Services(settings, policy.render_policy(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if own is None:
            for part in policy.missing_parts(settings):
                logger.warning("the usage and privacy policy does not state %s", part)
        services.log_sync.start()
        # With PostgreSQL: registered as a replica, told of new versions (docs/deploy.md).
        replica = start_replica(
            settings, services.versions, getattr(app.state, "replica_name", None),
            lambda: announce(services.versions),
        )  # fmt: skip
        services.replica = replica
        # A server process of its own: what is alive once started stays (see heap); a
        # server in a thread of another program (the demo, tests) leaves its heap be.
        settle = bool(getattr(app.state, "settle_heap", False))
        if settle:
            services.versions.settle_heap = True
            heap.settle(full=True)
        yield
        if settle:
            heap.release()
        if replica is not None:
            replica.stop()
        if services.log_batches is not None:  # its connection belongs to this loop
            await services.log_batches.aclose()
        services.close_log()
        services.close_registry()

    app = PatrolAPI(
        title="hotlist patrol API",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )
    app.state.services = services
    app.include_router(router)
    app.add_middleware(
        AccessGate, services=services, direct=lookups.serve, direct_paths=lookups.DIRECT
    )
    # The same gate for the lookups, called first (see PatrolAPI); its app is never
    # reached, as it answers POSTs to its paths itself.
    app.lane = AccessGate(
        app.router, services=services, direct=lookups.serve, direct_paths=lookups.DIRECT
    )
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
    return app


def _answer(request: Request, status: int, title: str, detail: str) -> Response:
    """A problem answer; the request's access record gets it as its outcome."""
    access = getattr(request.state, "access", None)
    if access is not None:  # whatever a route noted before it failed
        access.outcome = f"failed: {status} {detail}"
    return Response(problem_body(status, title, detail), status_code=status, media_type=PROBLEM)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return _answer(request, exc.status, exc.title, exc.detail)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _answer(request, 422, "Invalid request", validation_detail(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    answer = _answer(request, exc.status_code, str(exc.detail), str(exc.detail))
    answer.headers.update(exc.headers or {})
    return answer


def uvicorn_config(
    settings: Settings, host: str, port: int, tls: ssl.SSLContext | None = None, **options: Any
) -> uvicorn.Config:
    """How the API is served, in production and in the demo alike; HTTPS with ``tls``
    (:mod:`hotlist.serve.tls` builds it, its files checked before anything listens)."""
    log_config = {**uvicorn.config.LOGGING_CONFIG}
    log_config["loggers"] = {
        **log_config["loggers"],
        "hotlist": {"handlers": ["default"], "level": "INFO", "propagate": False},
    }
    if tls is not None:
        options["ssl_context_factory"] = lambda config, default: tls
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_config=log_config,
        http=BoundedHeadProtocol,  # httptools' C parser, the request head bounded
        # No WebSocket upgrades: uvicorn would take a handshake (a WebSocket library is
        # installed as a dependency's) past the gate's logging and answer it itself; as
        # plain HTTP it is a request like any other, refused or failed, and logged.
        ws="none",
        **options,
    )


def serve(
    settings: Settings,
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    allow_plain_http: bool = False,
    name: str | None = None,
) -> None:
    """Serve until stopped: HTTPS with ``tls``; plain HTTP only on loopback, unless
    ``allow_plain_http`` (TLS ends in front of this process, on this host). ``name`` is
    this replica's (default ``<hostname>:<port>``)."""
    refusal = None if tls is not None or allow_plain_http else plain_listen_refusal(host)
    if refusal is not None:
        raise ConfigError(refusal)
    config = uvicorn_config(settings, host, port, tls, log_level="info")
    assert isinstance(config.app, FastAPI)
    config.app.state.replica_name = name or default_name(port)
    config.app.state.settle_heap = True  # the process is the server's alone
    uvicorn.Server(config).run()


@contextmanager
def serving(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> Iterator[str]:
    """Serve from a thread of this process for as long as the block runs; yields the URL
    (https:// with ``tls``).

    For a program that needs the API next to other work (the demo). ``port=0`` takes a
    free port, bound before the server starts, so no other process can take it between."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(settings, host, bound, tls, log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="hotlist-api", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the API did not start on {host}:{bound}")
        time.sleep(0.02)
    scheme = "http" if tls is None else "https"
    try:
        yield f"{scheme}://[{host}]:{bound}" if ":" in host else f"{scheme}://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
