"""``https://`` source: download the tables from a web site (CA DOJ's CLEW site).

``url`` is the base; each ``files`` entry is a path relative to it, or a full ``https://``
URL on the same host (credentials are never sent to another host). A file lands under
the last segment of its URL path. TLS, pins and credentials: :mod:`hotlist.sources.https_tls`.

Change detection: a conditional GET (``If-None-Match`` / ``If-Modified-Since``) with the
validators of the response that brought the file taken last (which ones are trusted:
:mod:`hotlist.sources.https_validators`); a ``304`` is :class:`Unchanged` without a
download. A ``200`` is always hashed: a body that changed under the same validators
lands, and one whose hash is the last taken file's is dropped.

Landing, as for SFTP: streamed to ``<name>.part`` (0600) while hashing, checked against
``Content-Length``, fsynced, renamed atomically. A connection that drops mid-body is
resumed with ``Range`` + ``If-Range`` (a strong validator required, else the download
starts over), a few times at most. A login or error page served with ``200`` is refused
as not a table and never kept (:mod:`hotlist.sources.https_page`).
Failures: timeouts, resets, 5xx, 408 and 429 are transient (Prefect retries them);
401/403, other 4xx, redirects, TLS and pin failures fail at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import ssl
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urljoin, urlsplit

import httpx

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
from hotlist.sources.https_page import refuse_web_page
from hotlist.sources.https_tls import check_pin, credential, http_auth, tls_context, tls_failure
from hotlist.sources.https_validators import (
    Validators,
    http_date,
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
_SNIFF_BYTES = 1024
_DROPS = (httpx.RemoteProtocolError, httpx.ReadError)


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
    with _client(source, context, secret, host) as client:
        session = _Session(client, source, host, port, landing, bool(_proxy(source, host)))
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
    source: SourceConfig, context: ssl.SSLContext, secret: str | None, host: str
) -> Iterator[httpx.Client]:
    timeout = httpx.Timeout(source.read_timeout_s, connect=source.connect_timeout_s)
    with httpx.Client(
        verify=context,
        auth=http_auth(source, secret),
        proxy=_proxy(source, host),
        trust_env=False,  # no .netrc, no SSL_CERT_FILE: trust is what the configuration says
        timeout=timeout,
        follow_redirects=False,
        headers={"Accept-Encoding": "identity", "User-Agent": "hotlist"},
    ) as client:
        yield client


# -- one file --------------------------------------------------------------------------------


@dataclass
class _Body:
    sha256: str
    size: int
    validators: Validators
    mtime: float


@dataclass(frozen=True)
class _Session:
    client: httpx.Client
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

    def _download(self, target: _Target, part: Path, known: Validators | None) -> _Body | None:
        """GET into ``part``, resuming after drops; None on a 304 to our conditional GET."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(part, flags, 0o600), "wb", buffering=0) as out:
            state = _Progress(out)
            for attempt in range(1, ATTEMPTS + 1):
                headers = state.resume_headers()
                if headers is None:  # from the start: conditional while nothing has arrived
                    headers = known.conditional() if known and not state.received else {}
                conditional = "If-None-Match" in headers or "If-Modified-Since" in headers
                try:
                    with self._translated(target, state):
                        done = self._get(target, headers, state, conditional=conditional)
                    if done is None:
                        return None
                    break
                except _Dropped as drop:
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
        self, target: _Target, headers: dict[str, str], state: _Progress, *, conditional: bool
    ) -> bool | None:
        with self.client.stream("GET", target.url, headers=headers) as response:
            check_pin(response, self.source, self.host, self.port)
            status = response.status_code
            if status == 304 and conditional and not state.received:
                return None
            if status == 206 and state.received:
                state.continue_from(response, target)
            elif status == 200:
                state.start(response, strong_validators(response))
            else:
                raise self._refusal(response, target)
            encoding = response.headers.get("Content-Encoding", "identity").lower()
            if encoding != "identity":
                raise FetchError(
                    FetchFailure.NOT_A_TABLE,
                    f"{target.url} came with Content-Encoding {encoding!r} although hotlist asked"
                    " for identity; nothing was kept",
                )
            chunks = response.iter_raw()
            if state.received == 0:
                refuse_web_page(
                    target.url,
                    response.headers.get("Content-Type", ""),
                    _first_bytes(chunks, state),
                )
            for chunk in chunks:
                state.write(chunk)
        state.check_length(target)
        return True

    def _refusal(self, response: httpx.Response, target: _Target) -> FetchError:
        status = response.status_code
        what = f"{target.url} answered {status} {response.reason_phrase}"
        if status == 401:
            return FetchError(
                FetchFailure.AUTH_REFUSED,
                f"{what}: the site wants credentials, or refused the ones given (auth ="
                f" {self.source.auth!r}); check them with the site's operator",
            )
        if status == 403:
            return FetchError(
                FetchFailure.PERMISSION_DENIED,
                f"{what}: the site refused access; CLEW registers an agency's public IP"
                " address: check that this host's address is the registered one",
            )
        if status in {404, 410}:
            return FetchError(
                FetchFailure.NOT_FOUND,
                f"{what}: check the file's path in files, or ask the site whether it was published",
            )
        if status in {408, 429} or status >= 500:
            return FetchError(FetchFailure.SERVER_ERROR, f"{what}; retried later")
        if 300 <= status < 400:
            location = urlsplit(response.headers.get("Location", ""))
            return FetchError(
                FetchFailure.HTTP_REFUSED,
                f"{what}, redirecting to {location.netloc}{location.path} (a login page?); hotlist"
                " does not follow redirects: check the credentials, or name the file's final URL",
            )
        return FetchError(FetchFailure.HTTP_REFUSED, f"{what}; nothing was kept")

    @contextmanager
    def _translated(self, target: _Target, state: _Progress) -> Iterator[None]:
        try:
            yield
        except httpx.ReadTimeout as exc:
            if state.total is None and not state.received:  # no answer at all: no resumption
                raise FetchError(
                    FetchFailure.TIMEOUT,
                    f"{self.host} port {self.port} did not answer {target.url} within"
                    f" {self.source.read_timeout_s:g} s (read_timeout_s); retry later, or raise"
                    " read_timeout_s",
                ) from None
            raise _Dropped(type(exc).__name__) from exc
        except _DROPS as exc:
            refused = tls_failure(exc, self.source, self.host, self.port, direct=not self.proxied)
            if refused is not None:
                raise refused from None
            raise _Dropped(type(exc).__name__) from exc
        except httpx.TimeoutException:
            raise FetchError(
                FetchFailure.TIMEOUT,
                f"{self.host} port {self.port} did not answer within"
                f" {self.source.connect_timeout_s:g} s (connect_timeout_s) for {target.url};"
                " retry later, or raise connect_timeout_s",
            ) from None
        except httpx.ProxyError as exc:
            kind = FetchFailure.CONFIG if "407" in str(exc) else FetchFailure.CONNECTION_DROPPED
            raise FetchError(kind, f"the proxy refused the tunnel to {self.host}: {exc}") from None
        except httpx.LocalProtocolError as exc:  # its text may quote a header: a secret
            raise FetchError(
                FetchFailure.CONFIG,
                f"hotlist could not build a valid request for {target.url}"
                f" ({type(exc).__name__}); check the credential's form",
            ) from None
        except httpx.TransportError as exc:
            refused = tls_failure(exc, self.source, self.host, self.port, direct=not self.proxied)
            if refused is not None:
                raise refused from None
            raise FetchError(
                FetchFailure.CONNECTION_DROPPED,
                f"cannot reach {self.host} port {self.port} ({type(exc).__name__}: {exc});"
                " check the URL, the proxy and the network, then retry",
            ) from None


class _Dropped(Exception):
    """The connection broke after the response began."""


class _Progress:
    """The bytes of one download so far: part file and hash, expected total, validators."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.received = 0
        self.total: int | None = None
        self.validators = Validators(None, None)
        self.mtime = time.time()

    def start(self, response: httpx.Response, validators: Validators) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.digest = hashlib.sha256()
        self.received = 0
        length = response.headers.get("Content-Length")
        self.total = int(length) if length and length.isdigit() else None
        self.validators = validators
        modified = http_date(response.headers.get("Last-Modified"))
        self.mtime = modified.timestamp() if modified else time.time()

    def resume_headers(self) -> dict[str, str] | None:
        if self.received and self.total is not None and self.validators.if_range:
            return {"Range": f"bytes={self.received}-", "If-Range": self.validators.if_range}
        return None

    def continue_from(self, response: httpx.Response, target: _Target) -> None:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response.headers.get("Content-Range", ""))
        if match is None or int(match[1]) != self.received or int(match[3]) != self.total:
            raise FetchError(
                FetchFailure.HTTP_REFUSED,
                f"{target.url} answered the resumption with a range that does not continue the"
                " download; nothing was kept",
            )

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        view = memoryview(chunk)
        while view:  # an unbuffered file may take less than it was given
            view = view[self.out.write(view) :]
        self.received += len(chunk)

    def check_length(self, target: _Target) -> None:
        if self.total is not None and self.received != self.total:
            raise FetchError(
                FetchFailure.CONNECTION_DROPPED,
                f"{target.url}: {self.received} bytes arrived, Content-Length said"
                f" {self.total}; nothing was kept; retry",
            )

    def body(self) -> _Body:
        return _Body(self.digest.hexdigest(), self.received, self.validators, self.mtime)


def _first_bytes(chunks: Iterator[bytes], state: _Progress) -> bytes:
    """Read (and keep) at least the first ``_SNIFF_BYTES`` of the body for the sniff."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= _SNIFF_BYTES:
            break
    state.write(head)
    return head
