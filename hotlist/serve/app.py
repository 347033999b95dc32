"""The patrol API: pull the hotlist (full or delta), look plates up, acknowledge versions.

Every request but ``/privacy-policy`` carries ``Authorization: Bearer <key>``,
``X-User`` and ``X-Purpose``. Only consumers of California public agencies receive data
(SB 34); immigration enforcement is never a purpose (SB 54); every request, granted or
refused, is written to the hash-chained access log with the data element, user,
organization, purpose, outcome and client address.
"""

import datetime as dt
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from hotlist import audit
from hotlist import normalize as norm
from hotlist.access import is_immigration_purpose
from hotlist.config import Settings
from hotlist.lookup import describe_vehicle
from hotlist.publish import read_current
from hotlist.serve import consumers as reg

PROBLEM = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True)
class Loaded:
    version: int
    manifest: dict[str, Any]
    directory: Path
    by_plate: pl.DataFrame  # sorted by plate
    by_ocr: pl.DataFrame  # ocr_key, row (index into by_plate), sorted by ocr_key


def _ocr(expr: pl.Expr) -> pl.Expr:
    pairs = [(ch, group[0]) for group in norm.OCR_CLASSES for ch in group[1:]]
    return expr.str.replace_many([a for a, _ in pairs], [b for _, b in pairs])


class HotlistCache:
    """The current published version, loaded once per version.

    Lookups never wait for a new version: they keep answering from the loaded one while
    the next loads on a thread. Pulls (``wait=True``) get the newest published version.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()
        self._loading: int | None = None

    def current(self, wait: bool = True) -> Loaded:
        manifest = read_current(self.data_dir)
        if manifest is None:
            raise Problem(503, "No hotlist yet", "no hotlist version has been published yet")
        loaded = self._loaded
        if loaded is not None and loaded.version >= manifest["version"]:
            return loaded
        if loaded is not None and not wait:
            self._load_in_background(manifest)
            return loaded
        return self._load(manifest)

    def loaded_now(self) -> Loaded | None:
        return self._loaded

    def _load_in_background(self, manifest: dict[str, Any]) -> None:
        with self._lock:
            if self._loading == manifest["version"]:
                return
            self._loading = manifest["version"]
        threading.Thread(target=self._load, args=(manifest,), daemon=True).start()

    def _load(self, manifest: dict[str, Any]) -> Loaded:
        with self._lock:
            if self._loaded is not None and self._loaded.version >= manifest["version"]:
                return self._loaded
            directory = self.data_dir / "published" / manifest["dir"]
            try:
                frame = pl.read_parquet(directory / "hotlist.parquet").sort("plate", "state")
            except FileNotFoundError:
                # Superseded between reading CURRENT.json and opening it: take the newer.
                newer = read_current(self.data_dir)
                if newer is None or newer["version"] == manifest["version"]:
                    raise
                manifest, directory = newer, self.data_dir / "published" / newer["dir"]
                frame = pl.read_parquet(directory / "hotlist.parquet").sort("plate", "state")
            ocr = frame.select(
                _ocr(pl.col("plate")).alias("ocr_key"), pl.int_range(pl.len()).alias("row")
            ).sort("ocr_key")
            self._loaded = Loaded(manifest["version"], manifest, directory, frame, ocr)
            return self._loaded


class AccessLogSync:
    """fsyncs the access log a few times a second instead of once per request: at most
    the last 0.2 s of records are at risk in a power cut, none in a crash of the server."""

    def __init__(self, writer: audit.AccessLogWriter, every_s: float = 0.2) -> None:
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
        while not self._stop.wait(self.every_s):
            self.writer.sync()


class LookupRequest(BaseModel):
    plate: str = Field(min_length=1, max_length=16, examples=["7ABC123"])
    state: str | None = Field(default=None, min_length=2, max_length=2, examples=["CA"])
    fuzzy: bool = Field(default=False, description="Also return OCR look-alike candidates.")


class AckRequest(BaseModel):
    version: int = Field(ge=1, examples=[42])


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


class AckResponse(BaseModel):
    consumer: str
    acked_version: int


@dataclass(frozen=True)
class Caller:
    consumer: reg.Consumer
    user: str
    purpose: str
    client: str


def _hits(frame: pl.DataFrame, match: Literal["exact", "ocr-candidate"]) -> list[Hit]:
    return [
        Hit(
            entry_id=r["entry_id"],
            feed=r["feed"],
            list=r["list"],
            record_id=r["record_id"],
            plate=r["plate"],
            state=r["state"],
            record_date=r["record_date"],
            ori=r["ori"],
            description=describe_vehicle(r),
            match=match,
        )
        for r in frame.iter_rows(named=True)
    ]


def create_app(settings: Settings) -> FastAPI:
    data_dir = settings.data_dir
    cache = HotlistCache(data_dir)
    keys = reg.KeyCache(data_dir)
    access_log = audit.AccessLogWriter(data_dir)
    log_sync = AccessLogSync(access_log)
    app = FastAPI(
        title="hotlist patrol API",
        version="1",
        description=__doc__,
        on_startup=[log_sync.start],
        on_shutdown=[log_sync.stop],
    )

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return JSONResponse(
            {"type": "about:blank", "title": exc.title, "status": exc.status, "detail": exc.detail},
            status_code=exc.status,
            media_type=PROBLEM,
        )

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse(
            {"type": "about:blank", "title": "Invalid request", "status": 422, "detail": where},
            status_code=422,
            media_type=PROBLEM,
        )

    def log(
        caller_user: str, org: str, purpose: str, element: str, outcome: str, client: str
    ) -> None:
        access_log.append(
            audit.AccessRecord(caller_user, org, purpose, element, outcome, "api", client)
        )

    def element_of(request: Request) -> str:
        return f"{request.method} {request.url.path}"

    async def caller(
        request: Request,
        authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
        x_user: Annotated[str | None, Header(description="The person's username.")] = None,
        x_purpose: Annotated[
            str | None, Header(description="Purpose from the agency policy.")
        ] = None,
    ) -> Caller:
        client = request.client.host if request.client else ""
        user, purpose = (x_user or "").strip(), (x_purpose or "").strip()
        element = element_of(request)
        key = (
            authorization[7:].strip()
            if authorization and authorization.startswith("Bearer ")
            else None
        )
        consumer = keys.get(key) if key else None
        org = consumer.agency_ori if consumer else "unknown"

        def refuse(status: int, title: str, why: str) -> Problem:
            log(user or "unknown", org, purpose or "none", element, f"refused: {why}", client)
            return Problem(status, title, why)

        if consumer is None:
            raise refuse(
                401, "Unauthorized", "a valid API key is required (Authorization: Bearer <key>)"
            )
        if consumer.revoked_at:
            raise refuse(401, "Unauthorized", "this API key was revoked")
        if not consumer.agency_kind.may_receive:
            raise refuse(
                403, "Forbidden",
                f"{consumer.agency_kind.value} agencies may not receive ALPR information (SB 34)",
            )  # fmt: skip
        if not user:
            raise refuse(400, "User required", "the X-User header must name the person asking")
        if is_immigration_purpose(purpose):
            raise refuse(
                403, "Forbidden", "immigration enforcement is never a permitted purpose (SB 54)"
            )
        if purpose not in settings.access.purposes:
            raise refuse(
                403, "Forbidden",
                f"X-Purpose must be one of the agency policy's purposes: {', '.join(settings.access.purposes)}",
            )  # fmt: skip
        return Caller(consumer, user, purpose, client)

    encoded_lock = threading.Lock()
    deltas: dict[tuple[int, int], tuple[pl.DataFrame, pl.Series] | None] = {}

    def delta_of(loaded: Loaded, since: int) -> tuple[pl.DataFrame, pl.Series] | None:
        key = (loaded.version, since)
        with encoded_lock:
            if key in deltas:
                return deltas[key]
        delta = _delta(data_dir, since, loaded)
        with encoded_lock:
            if len(deltas) >= 32 or any(k[0] != loaded.version for k in deltas):
                deltas.clear()
            deltas[key] = delta
        return delta

    encoded: dict[tuple[int, int | None, str], bytes] = {}

    def delta_bytes(
        version: int, since: int | None, format: str, upserts: pl.DataFrame, removals: pl.Series
    ) -> bytes:
        """A delta file, encoded once per (version, since, format): consumers at the same
        version ask for the same bytes."""
        key = (version, since, format)
        with encoded_lock:
            if key in encoded:
                return encoded[key]
        rows = pl.concat(
            [
                upserts.with_columns(pl.lit("upsert").alias("op")),
                pl.DataFrame({"entry_id": removals}).with_columns(pl.lit("remove").alias("op")),
            ],
            how="diagonal_relaxed",
        )
        buffer = io.BytesIO()
        if format == "parquet":
            rows.write_parquet(buffer)
        else:
            rows.write_csv(buffer)
        with encoded_lock:
            if len(encoded) >= 32 or any(k[0] != version for k in encoded):
                encoded.clear()
            encoded[key] = buffer.getvalue()
        return encoded[key]

    fresh_memo: dict[tuple[int, int], dict[str, Any]] = {}

    def freshness(loaded: Loaded) -> dict[str, Any]:
        """Per feed: applied at, age, stale; recomputed at most once a second."""
        key = (loaded.version, int(time.time()))
        if key not in fresh_memo:
            fresh_memo.clear()
            fresh_memo[key] = _freshness(loaded)
        return fresh_memo[key]

    def _freshness(loaded: Loaded) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        limits = {
            feed: src.guards.freshness_hours
            for src in settings.sources.values()
            for feed in src.files
        }
        out: dict[str, Any] = {}
        for feed, info in loaded.manifest.get("freshness", {}).items():
            applied = (
                dt.datetime.fromisoformat(info["applied_at"]) if info.get("applied_at") else None
            )
            age = (now - applied).total_seconds() / 3600 if applied else None
            limit = limits.get(feed, 12.0)
            out[feed] = {
                "applied_at": info.get("applied_at"),
                "age_hours": age,
                "stale": age is None or age > limit,
            }
        return out

    @app.get(
        "/privacy-policy",
        response_class=PlainTextResponse,
        summary="The usage and privacy policy (public, SB 34)",
    )
    def privacy_policy() -> str:
        path = settings.access.privacy_policy
        if path is None or not path.exists():
            raise Problem(
                404, "No policy configured", "set [access] privacy_policy to the policy file"
            )
        return path.read_text(encoding="utf-8")

    @app.get(
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
        request: Request,
        who: Annotated[Caller, Depends(caller)],
        since: Annotated[int | None, Query(ge=0, description="Version the client holds.")] = None,
        format: Annotated[Literal["json", "csv", "parquet"], Query()] = "json",
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        loaded = await run_in_threadpool(cache.current, True)
        full = since is None or since > loaded.version
        upserts, removals = loaded.by_plate.clear(), pl.Series("entry_id", [], pl.Int64)
        if not full and since is not None:
            delta = deltas.get((loaded.version, since)) or await run_in_threadpool(
                delta_of, loaded, since
            )
            if delta is None:
                full = True
            else:
                upserts, removals = delta
        tag = f'"v{loaded.version}-{"full" if full else since}-{format}"'
        element = (
            f"full version {loaded.version}"
            if full
            else f"delta version {since} to {loaded.version}"
        )
        headers = {
            "ETag": tag,
            "X-Hotlist-Version": str(loaded.version),
            "X-Hotlist-Full": "true" if full else "false",
            "X-Hotlist-Freshness": json.dumps(freshness(loaded), separators=(",", ":")),
        }
        if if_none_match == tag:
            log(
                who.user,
                who.consumer.agency_ori,
                who.purpose,
                element,
                "granted: not modified",
                who.client,
            )
            return Response(status_code=304, headers=headers)
        log(who.user, who.consumer.agency_ori, who.purpose, element, "granted", who.client)
        if full and format in ("parquet", "csv"):
            name = f"hotlist.{format}"
            media = "application/vnd.apache.parquet" if format == "parquet" else "text/csv"
            return FileResponse(loaded.directory / name, media_type=media, headers=headers)
        if format == "json":
            return await run_in_threadpool(
                json_body, loaded, since, full, upserts, removals, headers
            )
        media = "application/vnd.apache.parquet" if format == "parquet" else "text/csv"
        key = (loaded.version, since, format)
        content = encoded.get(key) or await run_in_threadpool(
            delta_bytes, loaded.version, since, format, upserts, removals
        )
        return Response(content, media_type=media, headers=headers)

    def json_body(
        loaded: Loaded,
        since: int | None,
        full: bool,
        upserts: pl.DataFrame,
        removals: pl.Series,
        headers: dict[str, str],
    ) -> Response:
        body: dict[str, Any] = {
            "version": loaded.version,
            "since": since,
            "full": full,
            "freshness": freshness(loaded),
        }
        if full:
            body["entries"] = loaded.by_plate.to_dicts()
        else:
            body["upserts"] = upserts.to_dicts()
            body["removals"] = removals.to_list()
        return Response(
            json.dumps(body, default=str), media_type="application/json", headers=headers
        )

    @app.post(
        "/v1/lookup", response_model=LookupResponse, summary="Hits for a plate across every list"
    )
    async def lookup(
        body: LookupRequest, who: Annotated[Caller, Depends(caller)]
    ) -> LookupResponse:
        # Never wait for a new version: answer from the loaded one while it loads.
        loaded = (
            cache.current(wait=False)
            if cache.loaded_now() is not None
            else await run_in_threadpool(cache.current, True)
        )
        plate = norm.plate_value(body.plate)
        state = norm.state_value(body.state) if body.state else None
        frame = loaded.by_plate
        lo = frame["plate"].search_sorted(plate, side="left")
        hi = frame["plate"].search_sorted(plate, side="right")
        exact = frame.slice(lo, hi - lo)
        if state:
            exact = exact.filter(pl.col("state") == state)
        candidates = frame.clear()
        if body.fuzzy and plate:
            key = norm.ocr_key(plate)
            ocr = loaded.by_ocr
            a, b = (
                ocr["ocr_key"].search_sorted(key, side="left"),
                ocr["ocr_key"].search_sorted(key, side="right"),
            )
            rows = ocr.slice(a, b - a)["row"]
            candidates = frame[rows].filter(pl.col("plate") != plate)
            if state:
                candidates = candidates.filter(pl.col("state") == state)
        element = (
            f"plate {body.plate}"
            + (f" state {body.state}" if body.state else "")
            + (" fuzzy" if body.fuzzy else "")
        )
        log(
            who.user,
            who.consumer.agency_ori,
            who.purpose,
            element,
            f"granted: {exact.height} hits",
            who.client,
        )
        return LookupResponse(
            version=loaded.version,
            hits=_hits(exact, "exact"),
            candidates=_hits(candidates, "ocr-candidate"),
            freshness=freshness(loaded),
        )

    @app.post(
        "/v1/ack", response_model=AckResponse, summary="Confirm the version the client now holds"
    )
    def ack(body: AckRequest, who: Annotated[Caller, Depends(caller)]) -> AckResponse:
        loaded = cache.current()
        if body.version > loaded.version:
            raise Problem(
                409,
                "Unknown version",
                f"version {body.version} is newer than the current {loaded.version}",
            )
        reg.ack(data_dir, who.consumer.name, body.version)
        log(
            who.user,
            who.consumer.agency_ori,
            who.purpose,
            f"ack version {body.version}",
            "granted",
            who.client,
        )
        return AckResponse(consumer=who.consumer.name, acked_version=body.version)

    return app


def _delta(data_dir: Path, since: int, loaded: Loaded) -> tuple[pl.DataFrame, pl.Series] | None:
    """Entries added or changed since ``since`` (with content) and removed ones (ids only);
    None when the change files no longer reach back that far."""
    if since == loaded.version:
        return loaded.by_plate.clear(), pl.Series("entry_id", [], pl.Int64)
    changes = data_dir / "published" / "changes"
    paths = [changes / f"v{v:09d}.parquet" for v in range(since + 1, loaded.version + 1)]
    if not all(p.exists() for p in paths):
        return None
    ops = (
        pl.concat(
            [pl.read_parquet(p).with_columns(pl.lit(int(p.stem[1:])).alias("v")) for p in paths]
        )
        .sort("v")
        .unique("entry_id", keep="last")
    )
    removed = ops.filter(pl.col("op") == "remove")["entry_id"]
    upserts = loaded.by_plate.filter(
        pl.col("entry_id").is_in(ops.filter(pl.col("op") != "remove")["entry_id"].implode())
    )
    return upserts, removed


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


@contextmanager
def running_in_thread(settings: Settings, port: int = 0) -> Iterator[str]:
    """Serve on 127.0.0.1 from a thread of this process (the demo, the tests); yields the URL."""
    import uvicorn

    if port == 0:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="hotlist-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the API did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
