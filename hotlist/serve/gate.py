"""The API's gate: limits, authentication and the access policy before anything else runs,
and one access-log record for every request that reaches the API.

An ASGI middleware rather than a FastAPI dependency because FastAPI reads and parses a
request's body before it resolves dependencies: a body sent without a key would be read
(and a malformed one answered 422) before the key was looked at. Here the headers alone
decide, in this order, and no body is read until the request is admitted:

1. ``X-User``, ``X-Purpose`` and ``Authorization`` each at most once (400): clients and
   proxies disagree on which of two copies counts, so neither does.
2. Header values within bounds (400).
3. Never immigration enforcement (SB 54), then a valid key of a consumer that may receive
   data, a named person and a purpose of the agency's policy (:func:`hotlist.access.refusal`).
4. A declared body within the route's limit (413): ``MAX_BODY_BYTES``, or for a batch of
   reads ``MAX_BATCH_BODY_BYTES`` (only an authenticated caller may send that much).

A refused request whose body is chunked or over the limit is answered with
``Connection: close``, so the server never reads the rest of it (a small one is left to
uvicorn, which discards at most ``MAX_BODY_BYTES`` to keep the connection); an admitted
body is counted as it streams and cut off past its route's limit.

A batch of reads is logged as one record per read, appended together, and fsynced before
its answer goes out.
Header bytes as a whole are bounded by the protocol (:mod:`hotlist.serve.protocol`).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotlist.access import SB54_REFUSAL, Refusal, is_immigration_purpose, refusal
from hotlist.serve.consumers import KeysUnavailable
from hotlist.serve.deps import Access, AccessLogUnavailable, Caller, Problem, Services

#: Request bodies are a plate lookup or an acknowledgement: a few hundred bytes.
MAX_BODY_BYTES = 16 * 1024
BATCH_PATH = "/v1/lookup/batch"
#: Reads per batch, and the batch's body limit: room for that many reads of the longest
#: plate, escaped and spaced, but bounded.
MAX_BATCH_READS = 1000
MAX_BATCH_BODY_BYTES = 128 * MAX_BATCH_READS
#: Longest accepted value per header; longer ones are refused, not truncated.
MAX_HEADER_CHARS = {b"x-user": 128, b"x-purpose": 64, b"authorization": 256}
MAX_USER = MAX_HEADER_CHARS[b"x-user"]
MAX_PURPOSE = MAX_HEADER_CHARS[b"x-purpose"]
MAX_AUTHORIZATION = MAX_HEADER_CHARS[b"authorization"]
_NONE = [""]  # a header not sent (never changed)
#: Headers that must not repeat: which copy counts would be the client's choice.
SINGLE_HEADERS = (b"authorization", b"x-user", b"x-purpose")
#: Public pages: the usage and privacy policy (SB 34 wants it public) and the API schema.
PUBLIC_PATHS = frozenset({"/privacy-policy", "/openapi.json", "/docs", "/redoc"})

PROBLEM = "application/problem+json"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def body_limit(scope: Scope) -> int:
    """The most body bytes the request's route takes."""
    return MAX_BATCH_BODY_BYTES if scope["path"] == BATCH_PATH else MAX_BODY_BYTES


def validation_detail(errors: Iterable[Mapping[str, Any]], prefix: tuple[str, ...] = ()) -> str:
    """Where and why a request failed validation: loc and msg only, never the rejected
    input (it may be a plate, which must stay out of the log)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in (*prefix, *e['loc']))}: {e['msg']}" for e in errors
    )


def problem_body(status: int, title: str, detail: str) -> bytes:
    return json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()


def _text(value: bytes | bytearray) -> str:
    # UTF-8 first: a purpose sent as UTF-8 full-width letters must reach NFKC as those
    # letters, not as the Latin-1 mojibake of their bytes.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


#: The headers the gate reads, by lower-case name as sent; ``X_User`` counts as
#: ``X-User``, because some proxies and frameworks read one as the other: sent both
#: ways, it is a repeat.
READ_HEADERS = {
    **{name: name for name in (*SINGLE_HEADERS, b"content-length", b"transfer-encoding")},
    **{name.replace(b"-", b"_"): name for name in SINGLE_HEADERS},
}


def header_values(scope: Scope) -> dict[bytes, list[str]]:
    """The values of the headers the gate reads (:data:`READ_HEADERS`), by name; the
    others are left undecoded."""
    values: dict[bytes, list[str]] = {}
    read = READ_HEADERS.get
    for name, value in scope["headers"]:
        # Servers hand names over in lower case (uvicorn does): looked up as they come,
        # lowered only when not found and not lower case already.
        key = read(name) if type(name) is bytes else None
        if key is None:
            if type(name) is bytes and name.islower():
                continue
            key = read(bytes(name).lower())
            if key is None:
                continue
        values.setdefault(key, []).append(_text(value))
    return values


#: The access policy's decisions are pure functions of a few short strings, and a
#: server sees the same few (its officers, agencies and purposes) over and over: each
#: is decided once and remembered (bounded), instead of NFKC and regexes per request.
_immigration = functools.lru_cache(maxsize=1024)(is_immigration_purpose)


@functools.lru_cache(maxsize=4096)
def _decided(
    user: str, org: str, purpose: str, purposes: tuple[str, ...], may_receive: bool, kind: str
) -> Refusal | None:
    return refusal(
        user=user, org=org, purpose=purpose, purposes=purposes,
        agency_may_receive=may_receive, agency_kind=kind,
    )  # fmt: skip


def _declared_body(values: dict[bytes, list[str]]) -> tuple[int | None, bool]:
    """(Content-Length if given, whether an answer must end the connection if the app
    leaves the body unread): a chunked body or one over the limit would otherwise be
    read to its end, and discarded, before the connection's next request."""
    if b"transfer-encoding" in values:
        return None, True
    lengths = values.get(b"content-length", [])
    length = int(lengths[0]) if lengths and lengths[0].strip().isdigit() else None
    return length, length is not None and length > MAX_BODY_BYTES


#: Answers an admitted request itself: (services, access, path, receive, send).
Direct = Callable[[Services, Access, str, Receive, Send], Awaitable[None]]


class AccessGate:
    """See the module docstring; ``services`` writes the access log. POST requests to
    ``direct_paths`` are answered, once admitted, by ``direct`` instead of the app (the
    lookups: :mod:`hotlist.serve.lookups`)."""

    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        direct: Direct | None = None,
        direct_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.services = services
        self.direct = direct
        self.direct_paths = frozenset(direct_paths)
        self.purposes = tuple(services.settings.access.purposes)  # the policy's, as set

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        access = Access(
            client=str(client[0]) if client else "", element=f"{scope['method']} {scope['path']}"
        )
        scope.setdefault("state", {})["access"] = access
        public = scope["path"] in PUBLIC_PATHS
        values = header_values(scope)
        length, close_unread = _declared_body(values)
        limit = body_limit(scope)
        refused = self._admit(values, length, limit, access, public)
        if refused is not None:
            if not public:
                try:
                    await self.services.log(access, f"refused: {refused.detail}")
                except AccessLogUnavailable as exc:
                    refused = _unlogged(exc)
            await _send_problem(send, refused, close=close_unread)
            return

        received, finished = 0, not close_unread

        async def receive_counted() -> Message:
            nonlocal received, finished
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                finished = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not public and not access.logged:
                    await self.services.log(access, _outcome(message["status"], access.outcome))
                    if access.reads is not None:  # a batch's records are on disk first
                        await run_in_threadpool(self.services.access_log.sync)
                if not finished:  # the rest of the body stays unread: end the connection
                    message = {**message, "headers": [*message["headers"], CLOSE]}
            await send(message)

        try:
            if self.direct and scope["method"] == "POST" and scope["path"] in self.direct_paths:
                await self.direct(
                    self.services, access, scope["path"], receive_counted, send_logged
                )
            else:
                await self.app(scope, receive_counted, send_logged)
        except AccessLogUnavailable as exc:
            # Raised as the answer was about to start (its record could not be written):
            # nothing of it left, so the client is told the truth, and served nothing.
            await _send_problem(send, _unlogged(exc), close=True)
            return
        except Exception as exc:
            if not public and not access.logged:
                with contextlib.suppress(AccessLogUnavailable):  # the error itself goes on
                    await self.services.log(access, f"error: 500 {type(exc).__name__}")
            raise
        if not public and not access.logged:  # ended without an answer (a client gone)
            noted = access.outcome or ""
            with contextlib.suppress(AccessLogUnavailable):  # no answer went out either
                await self.services.log(
                    access, noted if noted.startswith("failed") else "failed: no answer"
                )

    def _admit(
        self,
        values: dict[bytes, list[str]],
        length: int | None,
        limit: int,
        access: Access,
        public: bool,
    ) -> Problem | None:
        """Fill in who asks, from the headers alone; the refusal, if any."""
        users = values.get(b"x-user", _NONE)
        purposes = values.get(b"x-purpose", _NONE)
        keys = values.get(b"authorization", _NONE)
        if public or len(users) != 1 or len(purposes) != 1 or len(keys) != 1:
            return self._admit_checked(values, length, limit, access, public)
        user, purpose, authorization = users[0], purposes[0], keys[0]
        if (
            len(user) > MAX_USER
            or len(purpose) > MAX_PURPOSE
            or len(authorization) > MAX_AUTHORIZATION
        ):
            return self._admit_checked(values, length, limit, access, public)
        # Each header at most once and within bounds: what _admit_checked would find
        # the same, taken straight (every request but a refused few comes here).
        if user := user.strip():
            access.user = user
        if purpose := purpose.strip():
            access.purpose = purpose
        return self._admit_caller(authorization, user, purpose, length, limit, access)

    def _admit_checked(
        self,
        values: dict[bytes, list[str]],
        length: int | None,
        limit: int,
        access: Access,
        public: bool,
    ) -> Problem | None:
        """:meth:`_admit` for a request with a header repeated or too long, or to a
        public page: each rule in its order, and what it finds said."""
        for name in SINGLE_HEADERS:
            given = values.get(name, [])
            if len(given) > 1:
                _describe(access, values)
                header = name.decode().title()
                return Problem(
                    400,
                    "Repeated header",
                    f"the {header} header is sent {len(given)} times; send it once",
                )
        for name, most in MAX_HEADER_CHARS.items():
            [value] = values.get(name, [""])
            if len(value) > most:
                _describe(access, values)
                header = name.decode().title()
                return Problem(400, "Header too long", f"{header} is longer than {most} characters")
        if public:
            return _too_large(length, MAX_BODY_BYTES)
        _describe(access, values)
        [authorization] = values.get(b"authorization", _NONE)
        [user] = values.get(b"x-user", _NONE)
        [purpose] = values.get(b"x-purpose", _NONE)
        return self._admit_caller(
            authorization, user.strip(), purpose.strip(), length, limit, access
        )

    def _admit_caller(
        self,
        authorization: str,
        user: str,
        purpose: str,
        length: int | None,
        limit: int,
        access: Access,
    ) -> Problem | None:
        """The rules from the replica's standing on (``user`` and ``purpose`` stripped,
        ``access`` described)."""
        displaced = self.services.displaced()
        if displaced is not None:
            return Problem(503, "Service Unavailable", displaced)
        if _immigration(access.purpose):
            return Problem(403, "Forbidden", SB54_REFUSAL)
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        try:
            consumer = self.services.keys.get(key) if key and scheme.lower() == "bearer" else None
        except KeysUnavailable as exc:  # fail closed: a revoked key may not be known yet
            return Problem(503, "Service Unavailable", str(exc))
        if consumer is None:
            return Problem(
                401, "Unauthorized", "a valid API key is required (Authorization: Bearer <key>)"
            )
        access.organization = consumer.agency_ori
        if consumer.revoked_at:
            return Problem(401, "Unauthorized", "this API key was revoked")
        refused = _decided(
            user,
            consumer.agency_ori,
            purpose,
            self.purposes,
            consumer.agency_kind.may_receive,
            consumer.agency_kind.value,
        )
        if refused is not None:
            return Problem(refused.status, refused.title, refused.reason)
        too_large = _too_large(length, limit)
        if too_large is None:
            access.caller = Caller(consumer, user, purpose, key)
        return too_large


CLOSE = (b"connection", b"close")
#: Seconds a client is told to wait before it asks again, after a 503 of the gate's.
RETRY_AFTER_S = 1


def _describe(access: Access, values: dict[bytes, list[str]]) -> None:
    """Who the headers say asks, as logged (each value cut to its limit; repeats joined)."""
    for name, attr in ((b"x-user", "user"), (b"x-purpose", "purpose")):
        given = [v.strip()[: MAX_HEADER_CHARS[name]] for v in values.get(name, [])]
        if any(given):
            setattr(access, attr, " | ".join(given))


def _unlogged(exc: AccessLogUnavailable) -> Problem:
    return Problem(503, "Service Unavailable", str(exc))


def _too_large(length: int | None, limit: int) -> Problem | None:
    if length is not None and length > limit:
        return Problem(413, "Content too large", f"the request body is larger than {limit} bytes")
    return None


def _outcome(status: int, noted: str | None) -> str:
    """The outcome logged: what the route or error handler noted, unless the status
    contradicts it."""
    if status < 400:
        return noted or "granted"
    if noted is None or noted.startswith("granted"):
        return f"failed: {status}"
    return noted


async def _send_problem(send: Send, problem: Problem, close: bool) -> None:
    headers = [(b"content-type", PROBLEM.encode())]
    if close:
        headers.append(CLOSE)
    if problem.status == 503:  # the log, the key registry or the registration is away
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    body = problem_body(problem.status, problem.title, problem.detail)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
