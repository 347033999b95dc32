"""The reference client: keep a local copy of the hotlist in sync, with deltas and acks.

What a patrol integration runs (``hotlist pull``, or ``hotlist pull --follow`` to keep
following). The copy is ``OUT/hotlist.parquet`` with ``OUT/state.json`` naming its
version; each pull asks for the delta since that version (or gets a full version when
too far behind), applies removals and upserts, replaces the copy atomically, then
acknowledges the version so the deletion reports can count this copy as purged.

The copy it replaces held the removed records: it is scrubbed (overwritten, fsynced,
unlinked: :func:`hotlist.scrub.scrub_unlink`), as the server's own files are, and so is
a half-written new copy. Following (:class:`Follower`) long-polls the server
(``wait``), so a new version reaches the copy as soon as it is published; it reconnects
with backoff when the server is away, and stops between steps when asked.

The copy holds record content wherever it is kept, so its files are mode 0600 even in a
directory the operator made world-readable; a directory the client creates is 0700.

The server is reached over verified TLS (:class:`Transport`); plain ``http://`` only to
loopback, unless the operator allows it (:mod:`hotlist.serve.tls`).
"""

from __future__ import annotations

import fcntl
import io
import itertools
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hotlist.config import ConfigError
from hotlist.private import PRIVATE_FILE, make_private, temporary_path, write_private
from hotlist.scrub import scrub_unlink
from hotlist.serve import tls

log = logging.getLogger("hotlist.pull")

#: Seconds a following client asks the server to wait for a newer version (at most 60).
FOLLOW_WAIT_S = 55
#: Backoff between failed attempts: doubling from the first, capped at the last.
BACKOFF_S = (1.0, 30.0)


class PullError(Exception):
    """The server refused or failed; the message carries its problem detail."""


class ServerAway(PullError):
    """The server could not be reached or answered 5xx: worth trying again later."""


class FollowStopped(BaseException):
    """Raised inside a wait when the follower is asked to stop (not an error)."""


@dataclass(frozen=True)
class PullResult:
    version: int
    full: bool
    entries: int
    upserts: int
    removals: int
    applied_s: float = 0.0  # from the answer's arrival to the copy in place


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{response.status_code} {body.get('title')}: {body.get('detail')}"
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"


def _refused(response: httpx.Response) -> PullError:
    if response.status_code >= 500:
        return ServerAway(_problem(response))
    return PullError(_problem(response))


class Copy:
    """The local copy in ``out``: its files, its version, whether that version was acked."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state_file, self.path = out / "state.json", out / "hotlist.parquet"
        self.replaced = self.path.with_name(self.path.name + ".replaced")
        for existing in (self.path, self.state_file):  # a copy left 0644 by an older client
            make_private(existing)
        self._finish_replacement()
        scrub_unlink(temporary_path(self.path))  # a new copy a killed run left half-written
        exists = self.state_file.exists() and self.path.exists()
        self.state: dict[str, Any] = json.loads(self.state_file.read_text()) if exists else {}

    @property
    def version(self) -> int | None:
        found = self.state.get("version")
        return None if found is None else int(found)

    @property
    def acked(self) -> bool:
        return bool(self.state.get("acked", True))

    def _finish_replacement(self) -> None:
        """The link to the old copy, kept until it is scrubbed: scrub it, unless a run was
        killed before the new copy took its place (then it is the copy itself)."""
        try:
            old = os.stat(self.replaced, follow_symlinks=False)
        except FileNotFoundError:
            return
        try:
            current = os.stat(self.path, follow_symlinks=False)
            same = (old.st_dev, old.st_ino) == (current.st_dev, current.st_ino)
        except FileNotFoundError:
            same = False
        if same:
            self.replaced.unlink()
        else:
            scrub_unlink(self.replaced)

    def replace(self, write: Callable[[BinaryIO], object], version: int) -> int:
        """Write the new copy (``write`` fills a private file), fsync it, put it in place,
        then scrub the copy it replaced; return how many entries it holds."""
        tmp = temporary_path(self.path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        try:
            with os.fdopen(os.open(tmp, flags, PRIVATE_FILE), "wb") as fh:
                os.fchmod(fh.fileno(), PRIVATE_FILE)
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            entries = pq.read_metadata(tmp).num_rows  # a whole Parquet file, or no change
        except BaseException:
            scrub_unlink(tmp)
            raise
        had_copy = self.path.exists()
        if had_copy:
            os.link(self.path, self.replaced)
        os.replace(tmp, self.path)
        self.save(version, acked=False)
        if had_copy:
            scrub_unlink(self.replaced)
        return int(entries)

    def save(self, version: int, acked: bool) -> None:
        self.state = {"version": version, "acked": acked}
        write_private(self.state_file, json.dumps(self.state))


#: Rows a row group of the copy holds at most after a delta; row groups that shrank
#: below it are merged (with the upserts) so that deltas do not leave slivers.
ROW_GROUP_ROWS = 122_880


def _dictionary_columns(source: pq.ParquetFile) -> list[str]:
    """The string columns the copy keeps dictionary-encoded: the ones its first row
    group stores with a dictionary page (low-cardinality: feed, state, make ...)."""
    meta = source.metadata
    if meta.num_row_groups == 0:
        return []
    group = meta.row_group(0)
    strings = {f.name for f in source.schema_arrow if _is_text(f.type)}
    return [
        group.column(i).path_in_schema
        for i in range(group.num_columns)
        if group.column(i).has_dictionary_page and group.column(i).path_in_schema in strings
    ]


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _write_delta(fh: BinaryIO, current: Path, touched: pa.Array, fresh: pl.DataFrame) -> None:
    """The copy without the ``touched`` entries, then ``fresh``, written to ``fh`` one row
    group at a time. Low-cardinality string columns stay dictionary-encoded from the
    page read to the page written (never decoded into strings), pages are uncompressed
    and carry no statistics: each of these cut the CPU of an apply, which is what fifty
    followers on one host queue for (docs/freshness.md, 2026-12-02)."""
    dictionary = _dictionary_columns(pq.ParquetFile(current))
    source = pq.ParquetFile(current, read_dictionary=dictionary)
    schema = source.schema_arrow
    upserts = fresh.to_arrow().select(schema.names).cast(schema)
    options: dict[str, Any] = {
        "compression": "none",
        "write_statistics": False,
        "use_dictionary": dictionary or False,
        "store_schema": False,  # readers see strings, as in the server's file, not categories
    }
    with pq.ParquetWriter(fh, schema, **options) as writer:
        pending: list[pa.Table] = []
        rows = 0
        kept = (
            _without(source.read_row_group(i, use_threads=False), touched)
            for i in range(source.num_row_groups)
        )
        for group in itertools.chain(kept, [upserts]):
            if pending and rows + group.num_rows > ROW_GROUP_ROWS:
                _write_group(writer, pending)
                pending, rows = [], 0
            pending.append(group)
            rows += group.num_rows
        _write_group(writer, pending)


def _without(group: pa.Table, touched: pa.Array) -> pa.Table:
    """The row group without the touched entries, each dictionary left with the values
    its rows still use: a value only a removed record had must not stay in the new
    copy's dictionary page (the copy it replaces is scrubbed; this one must be clean)."""
    kept = group.filter(pc.invert(pc.is_in(group["entry_id"], value_set=touched)))
    columns = [
        _compact(column.combine_chunks()) if pa.types.is_dictionary(column.type) else column
        for column in kept.columns
    ]
    return pa.table(columns, schema=kept.schema)


def _compact(column: pa.DictionaryArray) -> pa.DictionaryArray:
    used = pc.unique(column.indices).drop_null()
    if len(used) == len(column.dictionary):  # every value still used (feed, state ...)
        return column
    indices = pc.index_in(column.indices, value_set=used).cast(column.indices.type)
    return pa.DictionaryArray.from_arrays(indices, column.dictionary.take(used))


def _write_group(writer: pq.ParquetWriter, tables: list[pa.Table]) -> None:
    """One row group (several tables merged share one dictionary per column)."""
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables).unify_dictionaries()
    if table.num_rows:
        writer.write_table(table, row_group_size=max(table.num_rows, 1))


def _apply(copy: Copy, response: httpx.Response) -> PullResult:
    """Apply a full version or a delta to the copy, in bounded memory: a full version is
    the server's Parquet file, written as it came; a delta streams the copy a row group
    at a time into the new file (:func:`_write_delta`), so a follower holds the delta
    and one row group, not 1.7M rows (fifty followers on one host ran it out of memory
    otherwise: docs/freshness.md). The upserts follow the copy's rows."""
    arrived = time.monotonic()
    version = int(response.headers["X-Hotlist-Version"])
    full = response.headers["X-Hotlist-Full"] == "true"
    if full:
        body = response.content
        entries = upserts = copy.replace(lambda fh: fh.write(body), version)
        removals = 0
    else:
        incoming = pl.read_parquet(io.BytesIO(response.content))
        gone = incoming.filter(pl.col("op") == "remove")["entry_id"]
        fresh = incoming.filter(pl.col("op") == "upsert").drop("op")
        touched = pl.concat([gone, fresh["entry_id"]]).to_arrow()
        current = copy.path
        entries = copy.replace(lambda fh: _write_delta(fh, current, touched, fresh), version)
        upserts, removals = fresh.height, gone.len()
    applied_s = time.monotonic() - arrived
    return PullResult(version, full, entries, upserts, removals, applied_s)


def _ack(http: httpx.Client, headers: dict[bytes, bytes], copy: Copy) -> None:
    version = copy.version
    assert version is not None
    acked = http.post("/v1/ack", json={"version": version}, headers=headers)
    if acked.status_code != 200:
        raise _refused(acked)
    copy.save(version, acked=True)


def pull_once(
    http: httpx.Client,
    headers: dict[bytes, bytes],
    copy: Copy,
    wait_s: int = 0,
    waiting: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> PullResult | None:
    """One pull (waiting up to ``wait_s`` for a newer version); None when nothing is newer.
    An acknowledgement that failed last time is sent first. ``waiting`` wraps the request
    alone: applying and acknowledging are never cut short."""
    if copy.version is not None and not copy.acked:
        _ack(http, headers, copy)
    params: dict[str, str | int] = {"format": "parquet"}
    if copy.version is not None:
        params["since"] = copy.version
        if wait_s:
            params["wait"] = wait_s
    with waiting():
        response = http.get("/v1/hotlist", params=params, headers=headers)
    if response.status_code == 304:
        return None
    if response.status_code != 200:
        raise _refused(response)
    result = _apply(copy, response)
    _ack(http, headers, copy)
    return result


def _headers(key: str, user: str, purpose: str) -> dict[bytes, bytes]:
    # As UTF-8 bytes: httpx encodes str header values as ASCII, and a user is a name.
    return {
        b"Authorization": f"Bearer {key}".encode(),
        b"X-User": user.encode("utf-8"),
        b"X-Purpose": purpose.encode("utf-8"),
    }


@contextmanager
def _only_puller(out: Path) -> Iterator[None]:
    """One client at a time in ``out``: two would write the same temporary file."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Transport:
    """How the client reaches the server: whom it trusts (``ca_file``, else the system
    store), the certificate it presents (mutual TLS), and whether plain HTTP to a host
    other than loopback is allowed (:mod:`hotlist.serve.tls`)."""

    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    allow_plain_http: bool = False

    def client(self, server: str, timeout_s: float) -> httpx.Client:
        return httpx.Client(base_url=server, timeout=timeout_s, verify=self.context(server))

    def context(self, server: str) -> ssl.SSLContext:
        """The TLS context for ``server``; ConfigError when the transport is not allowed
        or its files cannot be used, before anything is sent."""
        refusal = None if self.allow_plain_http else tls.plain_server_refusal(server)
        if refusal is not None:
            raise ConfigError(refusal)
        given = [o for o, v in self._options() if v is not None]
        if given and not server.startswith("https://"):
            raise ConfigError(f"{', '.join(given)}: for an https:// server, not {server}")
        return tls.client_context(self.ca_file, self.client_cert, self.client_key)

    def _options(self) -> list[tuple[str, Path | None]]:
        return [
            ("--ca-file", self.ca_file),
            ("--client-cert", self.client_cert),
            ("--client-key", self.client_key),
        ]

    def refusal(self, exc: BaseException, server: str) -> PullError | None:
        """A PullError when ``exc`` is a TLS failure that trying again will not mend."""
        why = tls.tls_refusal(exc, server, self.ca_file, self.client_cert is not None)
        return None if why is None else PullError(why)


def pull(
    server: str,
    key: str,
    user: str,
    purpose: str,
    out: Path,
    timeout_s: float = 120.0,
    transport: Transport = Transport(),
) -> PullResult:
    """Bring the copy in ``out`` up to date once."""
    http = transport.client(server, timeout_s)
    try:
        with http, _only_puller(out):
            result = pull_once(http, _headers(key, user, purpose), Copy(out))
    except httpx.TransportError as exc:
        refused = transport.refusal(exc, server)
        if refused is not None:
            raise refused from None
        hint = tls.closed_hint(exc, server, transport.client_cert is not None)
        raise ServerAway(f"{server} could not be reached ({exc}){hint}") from None
    assert result is not None  # without wait, the server always answers with content
    return result


class Follower:
    """Keeps the copy in ``out`` following the server until :meth:`stop`.

    Each round long-polls for a version newer than the copy's, applies it, scrubs the
    copy it replaced and acknowledges. A server that is away (refused connection,
    timeout, 5xx) is tried again after a backoff that doubles up to ``BACKOFF_S[1]``; a
    refusal (401, 403, 422), a server certificate that does not verify, or a handshake
    the server refuses ends the follow with :class:`PullError`.
    """

    def __init__(
        self,
        server: str,
        key: str,
        user: str,
        purpose: str,
        out: Path,
        wait_s: int = FOLLOW_WAIT_S,
        on_pull: Callable[[PullResult], None] | None = None,
        transport: Transport = Transport(),
    ) -> None:
        self.server, self.out, self.wait_s = server, out, wait_s
        self.transport, self._context = transport, transport.context(server)
        self.headers = _headers(key, user, purpose)
        self.on_pull = on_pull
        self.failures = 0
        self._stop = threading.Event()
        self._interruptible = False
        self._runner: int | None = None
        self._http: httpx.Client | None = None

    def stop(self) -> None:
        """Stop after the step under way. From a signal handler of the thread that runs
        :meth:`run`, a wait for the server is cut short at once; from another thread, the
        client is closed and the wait ends at the latest when the server answers (within
        ``wait_s``)."""
        self._stop.set()
        if not self._interruptible:
            return
        if threading.get_ident() == self._runner:
            self._interruptible = False
            raise FollowStopped
        http = self._http
        if http is not None:
            http.close()

    def run(self) -> None:
        with _only_puller(self.out):
            self._run()

    def _run(self) -> None:
        copy = Copy(self.out)
        delay = BACKOFF_S[0]
        self._runner = threading.get_ident()
        try:
            timeout = self.wait_s + 30.0
            with httpx.Client(base_url=self.server, timeout=timeout, verify=self._context) as http:
                self._http = http
                while not self._stop.is_set():
                    try:
                        result = self._round(http, copy)
                    except RuntimeError:  # the client closed by stop() from another thread
                        if self._stop.is_set():
                            break
                        raise
                    except (httpx.TransportError, ServerAway) as exc:
                        if self._stop.is_set():
                            break
                        refused = self.transport.refusal(exc, self.server)
                        if refused is not None:  # an unverified server is never retried
                            raise refused from None
                        self.failures += 1
                        hint = tls.closed_hint(
                            exc, self.server, self.transport.client_cert is not None
                        )
                        log.warning("server away (%s%s); next try in %.0f s", exc, hint, delay)
                        self._pause(delay * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)
                        delay = min(delay * 2, BACKOFF_S[1])
                        continue
                    delay = BACKOFF_S[0]
                    if result is not None and self.on_pull is not None:
                        self.on_pull(result)
        except FollowStopped:
            log.info("stopped while waiting for the server")

    def _round(self, http: httpx.Client, copy: Copy) -> PullResult | None:
        return pull_once(http, self.headers, copy, self.wait_s, self._interruptible_wait)

    @contextmanager
    def _interruptible_wait(self) -> Iterator[None]:
        """A wait that stop() cuts short (by raising FollowStopped inside it)."""
        self._interruptible = True
        try:
            if self._stop.is_set():
                raise FollowStopped
            yield
        finally:
            self._interruptible = False

    def _pause(self, seconds: float) -> None:
        with self._interruptible_wait():
            self._stop.wait(seconds)
