"""Plate lookups, single and batched: what they answer, and their serving by the gate.

A lookup is the API's most frequent request by far (an ALPR system asks once per read),
so the gate (:mod:`hotlist.serve.gate`) answers ``POST /v1/lookup`` and
``POST /v1/lookup/batch`` itself once it has admitted the request, as plain ASGI:
FastAPI's routing, dependency resolution and exception wrappers cost more CPU per
request than the lookup and its access record together. The routes stay declared in
:mod:`hotlist.serve.routes` (the schema; they answer alike through the same functions).
Everything the gate guarantees holds on this path too: nothing before admission, the
body bounded as it streams, one access record per request (per read for a batch).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Send

from hotlist import normalize as norm
from hotlist.lookup import MAX_PLATE, BadQuery, plate_query, state_query
from hotlist.serve import versions
from hotlist.serve.consumers import RECHECK_S
from hotlist.serve.deps import Access, Problem, Services, still_admitted
from hotlist.serve.gate import (
    BATCH_PATH,
    MAX_BATCH_READS,
    PROBLEM,
    BodyTooLarge,
    problem_body,
    validation_detail,
)
from hotlist.serve.matching import hit
from hotlist.serve.versions import Loaded, NoVersion

LOOKUP_PATH = "/v1/lookup"
_MEDIA = {m: m.encode() for m in ("application/json", PROBLEM)}


class LookupRequest(BaseModel):
    plate: str = Field(min_length=1, max_length=16, examples=["7ABC123"])
    state: str | None = Field(default=None, min_length=2, max_length=2, examples=["CA"])
    fuzzy: bool = Field(default=False, description="Also return OCR look-alike candidates.")


class Hit(BaseModel):
    entry_id: int
    feed: str
    list: str
    record_id: str | None
    plate: str
    state: str
    record_date: dt.date
    ori: str | None
    description: str
    match: Literal["exact", "ocr-candidate"]


class LookupResponse(BaseModel):
    version: int
    hits: list[Hit]
    candidates: list[Hit] = Field(description="OCR look-alikes; never exact hits.")
    freshness: dict[str, Any]


class Read(BaseModel):
    plate: str = Field(min_length=1, max_length=16, examples=["7ABC123"])
    state: str | None = Field(default=None, min_length=2, max_length=2, examples=["CA"])


class BatchRequest(BaseModel):
    reads: list[Read] = Field(min_length=1, max_length=MAX_BATCH_READS)


class ReadResult(BaseModel):
    plate: str = Field(description="As the read gave it.")
    state: str | None
    hits: list[Hit]


class BatchResponse(BaseModel):
    version: int
    results: list[ReadResult] = Field(description="One per read, in the reads' order.")


async def loaded(served: Services) -> Loaded:
    """The version a lookup answers from: never waiting for a newly published version
    while the loaded one is still on disk (see :class:`versions.HotlistCache`)."""
    try:
        ready = served.versions.ready()
        if ready is not None:
            return ready
        return await run_in_threadpool(served.versions.current, False)
    except NoVersion:
        raise Problem(503, "No hotlist yet", "no hotlist version has been published yet") from None


async def lookup(served: Services, this: Access, body: LookupRequest) -> dict[str, Any]:
    this.element = (
        f"plate {body.plate}"
        + (f" state {body.state}" if body.state else "")
        + (" fuzzy" if body.fuzzy else "")
    )
    plate, state = read_query(body.plate, body.state, "body")
    version = await loaded(served)
    hits = version.index.hits(plate, state)
    candidates = _candidates(version, plate, state) if body.fuzzy and plate else []
    this.outcome = f"granted: {len(hits)} hits"
    return {
        "version": version.version,
        "hits": hits,
        "candidates": candidates,
        "freshness": versions.freshness(version, served.freshness_limits),
    }


async def batch(served: Services, this: Access, body: BatchRequest) -> dict[str, Any]:
    """Each read's hits, in the reads' order; each read noted for its own access record."""
    queries = [read_query(r.plate, r.state, f"body.reads.{i}") for i, r in enumerate(body.reads)]
    version = await loaded(served)
    index = version.index
    results, reads = [], []
    for read, (plate, state) in zip(body.reads, queries, strict=True):
        hits = index.hits(plate, state)
        results.append({"plate": read.plate, "state": read.state, "hits": hits})
        element = f"plate {read.plate}" + (f" state {read.state}" if read.state else "")
        reads.append((element, f"granted: {len(hits)} hits"))
    this.reads = reads  # the gate logs each read as its own record, in one append
    this.element = f"batch of {len(reads)} reads"
    this.outcome = f"granted: {len(reads)} reads"
    return {"version": version.version, "results": results}


def read_query(plate: str, state: str | None, where: str) -> tuple[str, str | None]:
    """A read as the lists hold it, the same rule as ``hotlist lookup``'s (NFKC first, so a
    full-width plate matches; a state must be a known code), or a 422 naming the field
    and why (never its value: it may be a plate)."""
    if not state and len(plate) <= MAX_PLATE and _as_listed(plate):
        return plate, None  # what plate_query returns for it (NFKC, upper, A-Z 0-9 kept)
    try:
        return plate_query(plate), state_query(state) if state else None
    except BadQuery as exc:
        field = "plate" if str(exc).startswith(("the plate", "a plate")) else "state"
        raise Problem(422, "Invalid request", f"{where}.{field}: {exc}") from None


def _as_listed(plate: str) -> bool:
    """Is ``plate`` already as the lists hold one (ASCII capitals and digits only)?"""
    return plate.isascii() and plate.isalnum() and (plate.isupper() or plate.isdigit())


def _candidates(loaded: Loaded, plate: str, state: str | None) -> list[dict[str, Any]]:
    """OCR look-alikes of ``plate`` (never the plate itself)."""
    key = norm.ocr_key(plate)
    ocr = loaded.by_ocr
    a = ocr["ocr_key"].search_sorted(key, side="left")
    b = ocr["ocr_key"].search_sorted(key, side="right")
    found = loaded.by_plate[ocr.slice(a, b - a)["row"]].filter(pl.col("plate") != plate)
    if state:
        found = found.filter(pl.col("state") == state)
    return [hit(r, "ocr-candidate") for r in found.iter_rows(named=True)]


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


#: The last freshness encoded, and its JSON: the same object answers every lookup for
#: up to a second (:func:`versions.freshness`), and its ages are floats, whose repr is
#: a large share of an answer's encoding. Kept as one tuple, replaced whole.
_freshness_json: tuple[object, str] = (None, "null")


def encode(answer: dict[str, Any]) -> bytes:
    """The hits are built to the response models' schema: encoded as they are (by one
    encoder, not one built per answer as ``json.dumps`` with options does); a lookup's
    freshness, last, once per freshness object."""
    global _freshness_json
    fresh = answer.get("freshness")
    if fresh is None or next(reversed(answer)) != "freshness":
        return _ENCODER.encode(answer).encode()
    memo = _freshness_json
    if memo[0] is not fresh:
        memo = _freshness_json = (fresh, _ENCODER.encode(fresh))
    if tuple(answer) == _LOOKUP_KEYS and type(answer["version"]) is int:
        # A lookup's answer, field by field; a miss (most reads) encodes no list at all.
        hits, candidates = answer["hits"], answer["candidates"]
        return (
            f'{{"version":{int.__repr__(answer["version"])}'
            f',"hits":{_ENCODER.encode(hits) if hits else "[]"}'
            f',"candidates":{_ENCODER.encode(candidates) if candidates else "[]"}'
            f',"freshness":{memo[1]}}}'
        ).encode()
    rest = _ENCODER.encode({k: v for k, v in answer.items() if k != "freshness"})
    return (
        rest[:-1] + (',"freshness":' if len(rest) > 2 else '"freshness":') + memo[1] + "}"
    ).encode()


_LOOKUP_KEYS = ("version", "hits", "candidates", "freshness")


Answer = Callable[[Services, Access, Any], Awaitable[dict[str, Any]]]
#: What the gate answers itself, by path (POST only): the body's model and the answer.
DIRECT: dict[str, tuple[type[BaseModel], Answer]] = {
    LOOKUP_PATH: (LookupRequest, lookup),
    BATCH_PATH: (BatchRequest, batch),
}


async def serve(served: Services, this: Access, path: str, receive: Receive, send: Send) -> None:
    """Answer an admitted lookup or batch as plain ASGI (``send`` is the gate's, which
    writes the access record as the answer starts).

    The gate admitted the request on its headers; a body that took its time (a client
    may send it as slowly as it likes), or a version's load, may have let a revocation
    pass meanwhile: after more than the key cache's :data:`RECHECK_S`, the key is
    checked again before anything is answered."""
    model, answer = DIRECT[path]
    admitted = time.monotonic()
    try:
        raw = await _body(receive)
        if raw is None:  # nothing to answer; the gate logs the request as it ended
            this.outcome = "failed: the client went away before its body was whole"
            return
        body = model.model_validate_json(raw)
        answered = await answer(served, this, body)
        if this.caller is not None and time.monotonic() - admitted > RECHECK_S:
            still_admitted(served, this.caller)
        encoded = encode(answered)
    except BodyTooLarge as exc:
        await _problem(send, this, 413, str(exc.detail), str(exc.detail))
    except ValidationError as exc:
        where = validation_detail(exc.errors(include_input=False), ("body",))
        await _problem(send, this, 422, "Invalid request", where)
    except Problem as exc:
        await _problem(send, this, exc.status, exc.title, exc.detail)
    else:
        await _send(send, 200, "application/json", encoded)


async def _body(receive: Receive) -> bytes | None:
    parts: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _problem(send: Send, this: Access, status: int, title: str, detail: str) -> None:
    this.outcome = f"failed: {status} {detail}"  # as the app's error answers note it
    await _send(send, status, PROBLEM, problem_body(status, title, detail))


async def _send(send: Send, status: int, media: str, body: bytes) -> None:
    headers = [(b"content-type", _MEDIA.get(media) or media.encode()),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
