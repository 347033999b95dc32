"""``https://`` source: download the tables from a web site (CA DOJ's CLEW site).

``url`` is the base; each ``files`` entry is a path relative to it, or a full ``https://``
URL on the same host (credentials are never sent to another host). A file lands under
the last segment of its URL path. TLS, pins and credentials: :mod:`hotlist.sources.https_tls`;
the connection (the standard library's ``http.client``): :mod:`hotlist.sources.https_connection`.

Change detection: a conditional GET (``If-None-Match`` / ``If-Modified-Since``) with the
validators of the response that brought the file taken last (which ones are trusted:
:mod:`hotlist.sources.https_validators`); a ``304`` is :class:`Unchanged` without a
download. A ``200`` is always hashed: a body that changed under the same validators
lands, and one whose hash is the last taken file's is dropped.

Landing, as for SFTP: streamed to ``<name>.part`` (0600) while hashing, checked against
``Content-Length``, fsynced, renamed atomically. A connection that drops mid-body is
resumed with ``Range`` + ``If-Range`` (a strong validator required, else the download
starts over), a few times at most. A login or error page served with ``200`` is refused
as not a table and never kept (:mod:`hotlist.sources.https_page`). The bytes so far and
the resumption: :mod:`hotlist.sources.https_progress`.
Failures: timeouts, resets, 5xx, 408 and 429 are transient (Prefect retries them);
401/403, other 4xx, redirects, TLS and pin failures fail at once
(:mod:`hotlist.sources.https_failures`).
"""

from __future__ import annotations

import logging
import os
import posixpath
import ssl
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from hotlist.config import SourceConfig
from hotlist.sources import (
    FetchError,
    FetchFailure,
    LandedFile,
    LastTaken,
    Taken,
    Unchanged,
    is_unchanged,
)
from hotlist.sources.https_connection import Connection, Site
from hotlist.sources.https_failures import Dropped, refusal, translated
from hotlist.sources.https_page import refuse_web_page
from hotlist.sources.https_progress import Body, Progress, first_bytes
from hotlist.sources.https_tls import credential, http_auth, tls_context
from hotlist.sources.https_validators import (
    Validators,
    load_validators,
    save_validators,
    strong_validators,
)
from hotlist.sources.landing import (
    TMP_SUFFIX,
    check_remote_name,
    discard,
    publish_file,
    remove_stale_parts,
)

log = logging.getLogger(__name__)

#: Downloads of one file (the first and its resumptions) before a drop is reported.
ATTEMPTS = 4
RETRY_PAUSE_S = 0.5
#: The body is read, hashed and written in blocks this large: few calls into Python.
READ_BYTES = 1 << 20


@dataclass(frozen=True)
class _Target:
    feed: str
    url: str
    name: str


def fetch_https(
    source: SourceConfig,
    feeds: list[str],
    landing: Path,
    last_taken: LastTaken,
    validators_file: Path,
) -> list[LandedFile | Unchanged]:
    """Download each feed's file into ``landing``; same contract as ``fetch_local``."""
    targets = _targets(source, feeds)
    base = urlsplit(source.url)
    host, port = base.hostname or "", base.port or 443
    secret = credential(source)
    context = tls_context(source, secret if source.auth == "client-certificate" else None)
    remembered = load_validators(validators_file)
    remove_stale_parts(landing)
    out: list[LandedFile | Unchanged] = []
    site = Site(host, port, _proxy(source, host))
    with _client(source, context, secret, site) as client:
        session = _Session(client, source, host, port, landing, site.proxy is not None)
        for target in targets:
            last = last_taken(target.feed)
            known = remembered.get(target.name)
            if known is None or not is_unchanged(last, target.name, known.sha256):
                known = None  # those validators belong to a file that is not the last taken
            item, seen = session.fetch(target, known, last)
            if seen is not None:
                remembered[target.name] = seen
                save_validators(validators_file, remembered)
            out.append(item)
    return out


# -- configuration ---------------------------------------------------------------------------


def _targets(source: SourceConfig, feeds: list[str]) -> list[_Target]:
    """Resolve each feed's URL and landing name; refuse another host or a clash of names."""
    base = source.url if source.url.endswith("/") else source.url + "/"
    origin = urlsplit(base)
    if not origin.hostname:
        raise FetchError(FetchFailure.CONFIG, f"url {source.url!r} names no host")
    missing = [feed for feed in feeds if feed not in source.files]
    if missing:
        raise FetchError(
            FetchFailure.CONFIG,
            f"feeds {missing} have no file; add them to the source's files table",
        )
    targets = []
    for feed in feeds:
        url = urljoin(base, source.files[feed])
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
            raise FetchError(
                FetchFailure.CONFIG,
                f"files.{feed} = {source.files[feed]!r} is not on {origin.netloc} over https;"
                " every file must come from the source's own site",
            )
        name = unquote(posixpath.basename(parts.path))
        targets.append(_Target(feed, url, name))
    names = [t.name for t in targets]
    for t in targets:
        check_remote_name(t.name, set(names))
    if len(set(names)) != len(names):
        raise FetchError(
            FetchFailure.CONFIG, f"two files would land under the same name: {sorted(names)}"
        )
    return targets


def _proxy(source: SourceConfig, host: str) -> str | None:
    """``proxy`` from the configuration, else HTTPS_PROXY unless NO_PROXY covers ``host``."""
    if source.proxy:
        return source.proxy
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies_environment().get("https")


@contextmanager
def _client(
    source: SourceConfig, context: ssl.SSLContext, secret: str | None, site: Site
) -> Iterator[Connection]:
    connection = Connection(source, context, site, http_auth(source, secret))
    try:
        yield connection
    finally:
        connection.close()


# -- one file --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Session:
    client: Connection
    source: SourceConfig
    host: str
    port: int
    landing: Path
    proxied: bool

    def fetch(
        self, target: _Target, known: Validators | None, last: Taken | None
    ) -> tuple[LandedFile | Unchanged, Validators | None]:
        part = self.landing / (target.name + TMP_SUFFIX)
        try:
            body = self._download(target, part, known)
        except BaseException:
            discard(part)
            raise
        if body is None:
            discard(part)  # opened before the answer came: empty, but not to be left
            log.info("%s on %s: 304, not modified", target.name, self.host)
            return Unchanged(target.feed, target.name), known
        seen = Validators(body.validators.etag, body.validators.last_modified, body.sha256)
        if is_unchanged(last, target.name, body.sha256):
            discard(part)
            log.info("%s on %s: same content as the file taken last", target.name, self.host)
            return Unchanged(target.feed, target.name), seen
        final = self.landing / target.name
        publish_file(part, final)
        log.info(
            "landed %s from %s (%d bytes, sha256 %s)",
            target.name,
            self.host,
            body.size,
            body.sha256,
        )
        landed = LandedFile(target.feed, target.name, final, body.sha256, body.size, body.mtime)
        return landed, seen

    def _download(self, target: _Target, part: Path, known: Validators | None) -> Body | None:
        """GET into ``part``, resuming after drops; None on a 304 to our conditional GET."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(part, flags, 0o600), "wb", buffering=0) as out:
            state = Progress(out)
            buffer = memoryview(bytearray(READ_BYTES))
            for attempt in range(1, ATTEMPTS + 1):
                headers = state.resume_headers()
                if headers is None:  # from the start: conditional while nothing has arrived
                    headers = known.conditional() if known and not state.received else {}
                conditional = "If-None-Match" in headers or "If-Modified-Since" in headers
                try:
                    with translated(
                        target.url,
                        state,
                        self.source,
                        self.host,
                        self.port,
                        proxied=self.proxied,
                    ):
                        done = self._get(target, headers, state, buffer, conditional=conditional)
                    if done is None:
                        return None
                    break
                except Dropped as drop:
                    log.warning(
                        "%s on %s: connection dropped after %d bytes (%s); attempt %d of %d",
                        target.name, self.host, state.received, drop, attempt, ATTEMPTS,
                    )  # fmt: skip
                    if attempt < ATTEMPTS:
                        time.sleep(RETRY_PAUSE_S * attempt)
            else:
                raise FetchError(
                    FetchFailure.CONNECTION_DROPPED,
                    f"{target.url}: the connection dropped during each of {ATTEMPTS} attempts"
                    f" (resumed with Range where the server allowed it); retry later",
                )
            os.fsync(out.fileno())
        return state.body()

    def _get(
        self,
        target: _Target,
        headers: dict[str, str],
        state: Progress,
        buffer: memoryview,
        *,
        conditional: bool,
    ) -> bool | None:
        with self.client.get(target.url, headers) as response:
            status = response.status_code
            if status == 304 and conditional and not state.received:
                return None
            if status == 206 and state.received:
                state.continue_from(response, target.url)
            elif status == 200:
                state.start(response, strong_validators(response))
            else:
                raise refusal(response, target.url, self.source)
            encoding = (response.headers.get("Content-Encoding") or "identity").lower()
            if encoding != "identity":
                raise FetchError(
                    FetchFailure.NOT_A_TABLE,
                    f"{target.url} came with Content-Encoding {encoding!r} although hotlist asked"
                    " for identity; nothing was kept",
                )
            if state.received == 0:
                refuse_web_page(
                    target.url,
                    response.headers.get("Content-Type") or "",
                    first_bytes(response.readinto, buffer, state),
                )
            state.receive(response.readinto, buffer)
        state.check_length(target.url)
        return True
