"""Published hotlist versions held in memory by the API, and what is computed from them.

A server never answers from a version the purge erased: ``CURRENT.json`` of the
published directory is stat'ed (and re-read only when its inode, mtime or size changed)
by every pull, and by lookups at most :data:`RECHECK_S` after the last look, and a
lookup that would answer from an older loaded version first stats that version's
Parquet file. Once the purge has erased it, the request waits for the current version
instead. The purge reports success no sooner than twice :data:`RECHECK_S` after it
erased a version (:mod:`hotlist.purge`), so by then every server has looked again. The
check uses only the shared files, so it holds for every replica that serves the same
``published_dir``; with PostgreSQL, replicas also load a new version the moment the
purge announces it (:mod:`hotlist.serve.replicas`).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from hotlist import csvsafe
from hotlist import normalize as norm
from hotlist.publish import read_current
from hotlist.serve import heap
from hotlist.serve.matching import PlateIndex

#: Seconds a lookup may answer from what the last look at ``CURRENT.json`` found: a
#: stat per lookup was a sixth of a lookup's system calls, and thousands of lookups a
#: second need not each look again. The purge waits twice this after it erases a version
#: before it reports success.
RECHECK_S = 0.1

#: Per-version memo sizes: consumers at the same version ask for the same few deltas.
MEMO_ENTRIES = 32


class NoVersion(Exception):
    """No hotlist version has been published yet."""


def _ocr(expr: pl.Expr) -> pl.Expr:
    pairs = [(ch, group[0]) for group in norm.OCR_CLASSES for ch in group[1:]]
    return expr.str.replace_many([a for a, _ in pairs], [b for _, b in pairs])


Delta = tuple[pl.DataFrame, pl.Series]


@dataclass
class Memo:
    """What one loaded version computes once: deltas, encoded deltas, freshness."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Held while a delta is computed or encoded: the pulls woken by a new version ask for
    #: the same one at once, and it is computed once, not once per pull (fifty scans of
    #: a 2M-entry file took the server 5 CPU-s).
    computing: threading.Lock = field(default_factory=threading.Lock)
    deltas: dict[int, Delta | None] = field(default_factory=dict)
    encoded: dict[tuple[int | None, str], bytes] = field(default_factory=dict)
    freshness: tuple[int, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Loaded:
    version: int
    manifest: dict[str, Any]
    directory: Path
    by_plate: pl.DataFrame  # sorted by plate
    by_ocr: pl.DataFrame  # ocr_key, row (index into by_plate), sorted by ocr_key
    index: PlateIndex  # exact matches in by_plate, without polars per read
    memo: Memo = field(default_factory=Memo, compare=False)

    def on_disk(self) -> bool:
        """Its files are still there: the purge has not erased this version."""
        try:
            os.stat(self.directory / "hotlist.parquet")
        except FileNotFoundError:
            return False
        return True

    def upserted(self, ids: pl.Series) -> pl.DataFrame:
        """The entries with these ids, in plate order."""
        return self.by_plate.filter(pl.col("entry_id").is_in(ids.implode()))


@dataclass(frozen=True)
class Unloaded:
    """The newest published version while it loads: enough to answer a delta pull.

    A delta needs the few entries it upserts, not the version's lookup indexes: they are
    read from the version's Parquet file (a scan, filtered by entry id: 0.07 CPU-s at 2M
    entries where the load takes ~1.3), so the pulls waiting for a version are answered
    while it loads. Its memo passes to the loaded version."""

    version: int
    manifest: dict[str, Any]
    directory: Path
    memo: Memo

    def upserted(self, ids: pl.Series) -> pl.DataFrame:
        """The entries with these ids, in the file's (plate) order."""
        return (
            pl.scan_parquet(self.directory / "hotlist.parquet")
            .filter(pl.col("entry_id").is_in(ids.implode()))
            .collect()
        )


class HotlistCache:
    """The current published version, loaded once per version.

    Lookups (``wait=False``) do not wait for a newly published version while the one
    they hold is still on disk: they answer from it while the next loads on a thread.
    Pulls (``wait=True``) get the newest published version.
    """

    def __init__(self, root: Path) -> None:
        self.root = root  # the published directory
        self._current = root / "CURRENT.json"
        self._seen: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()
        self._loading: int | None = None
        self._recheck_at = 0.0  # monotonic time after which a lookup looks again
        self._early: Unloaded | None = None  # the version being loaded, for delta pulls
        #: Freeze each loaded version out of full collections (a server process's).
        self.settle_heap = False

    def manifest(self, fresh: bool = False) -> dict[str, Any]:
        """The manifest CURRENT.json names; the file is read only when its stat changed.

        ``fresh`` reads it whatever its stat says: on a network filesystem a stat may
        answer from cached attributes for a while, an open revalidates (close-to-open
        consistency). A replica told of a new version reads it so."""
        if fresh:
            try:
                with open(self._current, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    read: dict[str, Any] = json.loads(fh.read())
            except FileNotFoundError:
                raise NoVersion from None
            self._seen = ((st.st_ino, st.st_mtime_ns, st.st_size), read)
            return read
        try:
            st = os.stat(self._current)
        except FileNotFoundError:
            raise NoVersion from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        seen = self._seen
        if seen is not None and seen[0] == stamp:
            return seen[1]
        # Read after the stat: the content is at least as new as the stamp kept with it.
        manifest = read_current(self.root)
        if manifest is None:
            raise NoVersion
        self._seen = (stamp, manifest)
        return manifest

    def _recent_manifest(self) -> dict[str, Any]:
        """The manifest as a look at most :data:`RECHECK_S` ago found it (a lookup's)."""
        now = time.monotonic()
        seen = self._seen
        if seen is not None and now < self._recheck_at:
            return seen[1]
        manifest = self.manifest()
        self._recheck_at = now + RECHECK_S
        return manifest

    def current(self, wait: bool = True) -> Loaded:
        """The version to answer from: for a pull (``wait``), the newest published; for a
        lookup, the one a look at ``CURRENT.json`` at most :data:`RECHECK_S` ago found
        newest, or the loaded one while that one is on disk and the next loads."""
        manifest = self.manifest() if wait else self._recent_manifest()
        loaded = self._loaded
        if loaded is not None and loaded.version >= manifest["version"]:
            return loaded
        if loaded is not None and not wait and loaded.on_disk():
            self.load_in_background(manifest)
            return loaded
        return self._load(manifest)

    def ready(self) -> Loaded | None:
        """What a lookup answers from without a load on the caller's thread (what
        ``current(wait=False)`` returns when it need not load), else None: nothing is
        loaded yet, or the loaded version was erased and the current one must load first
        (on a worker thread: a 2M-entry load on the event loop held every request)."""
        manifest = self._recent_manifest()
        loaded = self._loaded
        if loaded is None:
            return None
        if loaded.version >= manifest["version"]:
            return loaded
        if loaded.on_disk():
            self.load_in_background(manifest)
            return loaded
        return None

    def newest_loaded(self) -> Loaded | None:
        """The loaded version if it is the newest published (what ``current()`` would
        return without loading anything), else None; a stat of ``CURRENT.json``."""
        loaded = self._loaded
        if loaded is None or loaded.version < self.manifest()["version"]:
            return None
        return loaded

    def loaded_now(self) -> Loaded | None:
        return self._loaded

    def unloaded(self, since: int) -> Unloaded | None:
        """The newest published version, not loaded yet, for a delta from ``since``. None
        when it is loaded, or the pull needs a full version. The caller starts its load
        (:meth:`load_in_background`) once the delta is answered: the two would share the
        cores, and the waiting pulls need only the delta."""
        manifest = self.manifest()
        version = int(manifest["version"])
        loaded = self._loaded
        if since >= version or (loaded is not None and loaded.version >= version):
            return None
        early = self._early
        if early is None or early.version != version:
            early = Unloaded(version, manifest, self.root / manifest["dir"], Memo())
            self._early = early
        return early

    def load_in_background(self, manifest: dict[str, Any]) -> None:
        with self._lock:
            if self._loading == manifest["version"]:
                return
            self._loading = manifest["version"]
        threading.Thread(target=self._load, args=(manifest,), daemon=True).start()

    def _load(self, manifest: dict[str, Any]) -> Loaded:
        with self._lock:
            if self._loaded is not None and self._loaded.version >= manifest["version"]:
                return self._loaded
            directory = self.root / manifest["dir"]
            try:
                frame = in_plate_order(pl.read_parquet(directory / "hotlist.parquet"))
            except FileNotFoundError:
                # Superseded between reading CURRENT.json and opening it: take the newer.
                newer = read_current(self.root)
                if newer is None or newer["version"] == manifest["version"]:
                    raise
                manifest, directory = newer, self.root / newer["dir"]
                frame = in_plate_order(pl.read_parquet(directory / "hotlist.parquet"))
            ocr = frame.select(
                _ocr(pl.col("plate")).alias("ocr_key"), pl.int_range(pl.len()).alias("row")
            ).sort("ocr_key")
            early = self._early
            memo = (
                early.memo if early is not None and early.version == manifest["version"] else Memo()
            )
            self._loaded = Loaded(
                manifest["version"], manifest, directory, frame, ocr, PlateIndex(frame), memo
            )
            self._early = None
            if self.settle_heap:  # the version stays: full collections need not scan it
                heap.settle()
            return self._loaded


def in_plate_order(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by plate, then state, as the lookups search it. The publish writes
    the rows in that order already (``ORDER BY plate, state, entry_id``): checking it
    takes a pass over two columns, where sorting 2M rows again took 2.7 CPU-s and held
    every waiting pull for 2 s (docs/freshness.md). A file in another order is sorted."""
    keys = frame.select(pl.struct("plate", "state")).to_series()
    return frame if keys.is_sorted() else frame.sort("plate", "state")


def delta(loaded: Loaded | Unloaded, since: int) -> Delta | None:
    """Entries added or changed since ``since`` (with content) and removed ones (ids only),
    computed once per (version, since); None when the change files no longer reach back.
    The change files are those published beside the loaded version."""
    memo = loaded.memo
    with memo.computing:
        with memo.lock:
            if since in memo.deltas:
                return memo.deltas[since]
        found = _delta(since, loaded)
        with memo.lock:
            if len(memo.deltas) >= MEMO_ENTRIES:
                memo.deltas.clear()
            memo.deltas[since] = found
    return found


def _delta(since: int, loaded: Loaded | Unloaded) -> Delta | None:
    if since == loaded.version:
        none = pl.Series("entry_id", [], pl.Int64)
        return loaded.upserted(none), none
    changes = loaded.directory.parent / "changes"
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
    return loaded.upserted(ops.filter(pl.col("op") != "remove")["entry_id"]), removed


def encoded_delta(
    loaded: Loaded | Unloaded,
    since: int | None,
    format: str,
    upserts: pl.DataFrame,
    removals: pl.Series,
) -> bytes:
    """A delta file, encoded once per (version, since, format)."""
    memo, key = loaded.memo, (since, format)
    with memo.computing:
        return _encoded(memo, key, upserts, removals)


def _encoded(
    memo: Memo, key: tuple[int | None, str], upserts: pl.DataFrame, removals: pl.Series
) -> bytes:
    with memo.lock:
        if key in memo.encoded:
            return memo.encoded[key]
    format = key[1]
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
        csvsafe.frame(rows).write_csv(buffer)  # no cell a spreadsheet would run
    with memo.lock:
        if len(memo.encoded) >= MEMO_ENTRIES:
            memo.encoded.clear()
        memo.encoded[key] = buffer.getvalue()
    return memo.encoded[key]


def freshness(loaded: Loaded | Unloaded, limits: dict[str, float]) -> dict[str, Any]:
    """Per feed: applied at, age, stale; recomputed at most once a second."""
    second = int(time.time())
    memo = loaded.memo.freshness
    if memo is not None and memo[0] == second:
        return memo[1]
    now = dt.datetime.now(dt.UTC)
    out: dict[str, Any] = {}
    for feed, info in loaded.manifest.get("freshness", {}).items():
        applied = dt.datetime.fromisoformat(info["applied_at"]) if info.get("applied_at") else None
        age = (now - applied).total_seconds() / 3600 if applied else None
        out[feed] = {
            "applied_at": info.get("applied_at"),
            "age_hours": age,
            "stale": age is None or age > limits.get(feed, 12.0),
        }
    loaded.memo.freshness = (second, out)
    return out
