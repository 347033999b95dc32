"""The patrol API's routes: pull the hotlist (full or delta), look plates up, acknowledge
versions, read the usage and privacy policy.

Routes run after the gate (:mod:`hotlist.serve.gate`) admitted the request. Each names
the data element it used and its outcome on the request's :class:`Access`; the gate logs it.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, Field

from hotlist.serve import lookups, versions
from hotlist.serve.consumers import RECHECK_S as KEYS_RECHECK_S
from hotlist.serve.deps import (
    Access,
    Caller,
    Problem,
    Services,
    access,
    caller,
    services,
    still_admitted,
)
from hotlist.serve.gate import MAX_BATCH_READS
from hotlist.serve.lookups import (
    BatchRequest,
    BatchResponse,
    LookupRequest,
    LookupResponse,
)
from hotlist.serve.versions import Loaded, NoVersion, Unloaded
from hotlist.serve.waiters import MAX_WAIT_S, waiters_for

router = APIRouter()

Served = Annotated[Services, Depends(services)]
Who = Annotated[Caller, Depends(caller)]
This = Annotated[Access, Depends(access)]


class AckRequest(BaseModel):
    version: int = Field(ge=1, examples=[42])


class AckResponse(BaseModel):
    consumer: str
    acked_version: int


async def _current(served: Services, wait: bool) -> Loaded:
    """The version to answer from; loaded on a worker thread only when a load is due (a
    pull of the newest version already loaded stays on the event loop: a stat, where a
    hop to a thread and back would make the loop wait for that thread's turn)."""
    try:
        ready = None if wait else served.versions.ready()
        if ready is not None:
            return ready
        newest = served.versions.newest_loaded()
        if newest is not None:
            return newest
        return await run_in_threadpool(served.versions.current, wait)
    except NoVersion:
        raise Problem(503, "No hotlist yet", "no hotlist version has been published yet") from None


async def _for_pull(served: Services, since: int | None) -> Loaded | Unloaded:
    """The version a pull answers from: a delta pull (``since``) of a version still
    loading is answered from its files (:class:`hotlist.serve.versions.Unloaded`), not
    after the load (which the lookups need, and a pull does not)."""
    if since is not None:
        try:
            early = served.versions.unloaded(since)
        except NoVersion:
            early = None
        if early is not None:
            return early
    return await _current(served, wait=True)


@router.get(
    "/privacy-policy",
    response_class=PlainTextResponse,
    summary="The usage and privacy policy (public, SB 34)",
)
def privacy_policy(served: Served) -> str:
    own = served.settings.access.privacy_policy
    return own.read_text(encoding="utf-8") if own is not None else served.policy_text


@router.get(
    "/v1/hotlist",
    summary="The current hotlist, or the delta since a version",
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/csv": {},
                "application/vnd.apache.parquet": {},
            }
        }
    },
)
async def hotlist(
    served: Served,
    who: Who,
    this: This,
    since: Annotated[int | None, Query(ge=0, description="Version the client holds.")] = None,
    format: Annotated[Literal["json", "csv", "parquet"], Query()] = "json",
    if_none_match: Annotated[str | None, Header()] = None,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="With since: seconds to wait for a newer version (304 if none).",
        ),
    ] = 0,
) -> Response:
    checked = time.monotonic()  # the key was last found valid (by the gate) about now
    stamps = served.stamps
    if stamps.due(who.consumer.name):  # when this copy last polled (hotlist.serve.seen)
        await run_in_threadpool(stamps.stamp, who.consumer.name)
    if wait and since is not None:
        newer = await waiters_for(served.versions).other_than(since, wait)
        await run_in_threadpool(still_admitted, served, who)
        checked = time.monotonic()
        if newer is None:
            this.element = f"wait for a version after {since}"
            this.outcome = "granted: nothing newer"
            return Response(status_code=304, headers={"X-Hotlist-Version": str(since)})
    loaded = await _for_pull(served, since)
    full = since is None or since > loaded.version
    upserts, removals = None, pl.Series("entry_id", [], pl.Int64)
    if not full and since is not None:
        try:
            delta = loaded.memo.deltas.get(since) or await run_in_threadpool(
                versions.delta, loaded, since
            )
        except FileNotFoundError:  # superseded and erased while it loaded: the newest
            loaded = await _current(served, wait=True)
            delta = await run_in_threadpool(versions.delta, loaded, since)
        if delta is None:
            full = True
        else:
            upserts, removals = delta
    if full and format == "json" and isinstance(loaded, Unloaded):
        loaded = await _current(served, wait=True)  # a full JSON answer needs it loaded
    if time.monotonic() - checked > KEYS_RECHECK_S:  # a version's load (2M entries: 1.5 s)
        await run_in_threadpool(still_admitted, served, who)  # let a revocation pass?
    fresh = versions.freshness(loaded, served.freshness_limits)
    tag = f'"v{loaded.version}-{"full" if full else since}-{format}"'
    this.element = (
        f"full version {loaded.version}" if full else f"delta version {since} to {loaded.version}"
    )
    headers = {
        "ETag": tag,
        "X-Hotlist-Version": str(loaded.version),
        "X-Hotlist-Full": "true" if full else "false",
        "X-Hotlist-Freshness": json.dumps(fresh, separators=(",", ":")),
    }
    if if_none_match == tag:
        this.outcome = "granted: not modified"
        return Response(status_code=304, headers=headers)
    this.outcome = "granted"
    media = "application/vnd.apache.parquet" if format == "parquet" else "text/csv"
    if full and format in ("parquet", "csv"):
        return FileResponse(
            loaded.directory / f"hotlist.{format}", media_type=media, headers=headers
        )
    if format == "json":
        body: dict[str, Any] = {"version": loaded.version, "since": since, "full": full}
        body["freshness"] = fresh
        if full:
            assert isinstance(loaded, Loaded)
            body["entries"] = loaded.by_plate
        else:
            body["upserts"], body["removals"] = upserts, removals
        if isinstance(loaded, Unloaded):
            served.versions.load_in_background(loaded.manifest)
        return await run_in_threadpool(_json_response, body, headers)
    assert upserts is not None
    content = loaded.memo.encoded.get((since, format)) or await run_in_threadpool(
        versions.encoded_delta, loaded, since, format, upserts, removals
    )
    if isinstance(loaded, Unloaded):  # the delta first, then the load (they share the cores)
        served.versions.load_in_background(loaded.manifest)
    return Response(content, media_type=media, headers=headers)


def _json_response(body: dict[str, Any], headers: dict[str, str]) -> Response:
    for name, value in body.items():
        if isinstance(value, pl.DataFrame):
            body[name] = value.to_dicts()
        elif isinstance(value, pl.Series):
            body[name] = value.to_list()
    return Response(json.dumps(body, default=str), media_type="application/json", headers=headers)


@router.post(
    "/v1/lookup", response_model=LookupResponse, summary="Hits for a plate across every list"
)
async def lookup(body: LookupRequest, served: Served, who: Who, this: This) -> Response:
    """Served by the gate itself (:mod:`hotlist.serve.lookups`); declared here for the
    schema, and answering alike should a request reach it."""
    return _json(await lookups.lookup(served, this, body))


@router.post(
    "/v1/lookup/batch",
    response_model=BatchResponse,
    summary=f"Exact hits for up to {MAX_BATCH_READS} reads, each logged as its own access",
)
async def lookup_batch(body: BatchRequest, served: Served, who: Who, this: This) -> Response:
    """As ``lookup``: served by the gate, declared here."""
    return _json(await lookups.batch(served, this, body))


def _json(answer: dict[str, Any]) -> Response:
    return Response(lookups.encode(answer), media_type="application/json")


@router.post(
    "/v1/ack", response_model=AckResponse, summary="Confirm the version the client now holds"
)
async def ack(body: AckRequest, served: Served, who: Who, this: This) -> AckResponse:
    this.element = f"ack version {body.version}"
    try:  # the published version (a stat): an ack does not wait for a version's load
        current = int(served.versions.manifest()["version"])
    except NoVersion:
        raise Problem(503, "No hotlist yet", "no hotlist version has been published yet") from None
    if body.version > current:
        raise Problem(
            409,
            "Unknown version",
            f"version {body.version} is newer than the current {current}",
        )
    if not await run_in_threadpool(served.consumers.ack, who.key, body.version):
        raise Problem(
            401, "Unauthorized", "this API key was revoked or replaced while the request waited"
        )
    this.outcome = "granted"
    return AckResponse(consumer=who.consumer.name, acked_version=body.version)
