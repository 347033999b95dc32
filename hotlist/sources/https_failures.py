"""What an ``https://`` source's failures mean: HTTP statuses and transport errors.

:func:`refusal` turns a status that is not a table into a :class:`FetchError` saying what
to do (401/403, other 4xx and redirects fail at once; 5xx, 408 and 429 are transient and
Prefect retries them). :func:`translated` turns httpx's errors into the same: TLS and pin
failures (:mod:`hotlist.sources.https_tls`) and timeouts before any answer fail, while a
connection that breaks after the response began is :class:`Dropped`, for the caller to
resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from hotlist.config import SourceConfig
from hotlist.sources import FetchError, FetchFailure
from hotlist.sources.https_progress import Progress
from hotlist.sources.https_tls import tls_failure

_DROPS = (httpx.RemoteProtocolError, httpx.ReadError)


class Dropped(Exception):
    """The connection broke after the response began."""


def refusal(response: httpx.Response, url: str, source: SourceConfig) -> FetchError:
    """The failure an answer other than 200, or 206 to a resumption, stands for."""
    status = response.status_code
    what = f"{url} answered {status} {response.reason_phrase}"
    if status == 401:
        return FetchError(
            FetchFailure.AUTH_REFUSED,
            f"{what}: the site wants credentials, or refused the ones given (auth ="
            f" {source.auth!r}); check them with the site's operator",
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
def translated(
    url: str, state: Progress, source: SourceConfig, host: str, port: int, *, proxied: bool
) -> Iterator[None]:
    """httpx's errors inside the block as a :class:`FetchError`, or :class:`Dropped`."""
    try:
        yield
    except httpx.ReadTimeout as exc:
        if state.total is None and not state.received:  # no answer at all: no resumption
            raise FetchError(
                FetchFailure.TIMEOUT,
                f"{host} port {port} did not answer {url} within"
                f" {source.read_timeout_s:g} s (read_timeout_s); retry later, or raise"
                " read_timeout_s",
            ) from None
        raise Dropped(type(exc).__name__) from exc
    except _DROPS as exc:
        refused = tls_failure(exc, source, host, port, direct=not proxied)
        if refused is not None:
            raise refused from None
        raise Dropped(type(exc).__name__) from exc
    except httpx.TimeoutException:
        raise FetchError(
            FetchFailure.TIMEOUT,
            f"{host} port {port} did not answer within"
            f" {source.connect_timeout_s:g} s (connect_timeout_s) for {url};"
            " retry later, or raise connect_timeout_s",
        ) from None
    except httpx.ProxyError as exc:
        kind = FetchFailure.CONFIG if "407" in str(exc) else FetchFailure.CONNECTION_DROPPED
        raise FetchError(kind, f"the proxy refused the tunnel to {host}: {exc}") from None
    except httpx.LocalProtocolError as exc:  # its text may quote a header: a secret
        raise FetchError(
            FetchFailure.CONFIG,
            f"hotlist could not build a valid request for {url}"
            f" ({type(exc).__name__}); check the credential's form",
        ) from None
    except httpx.TransportError as exc:
        refused = tls_failure(exc, source, host, port, direct=not proxied)
        if refused is not None:
            raise refused from None
        raise FetchError(
            FetchFailure.CONNECTION_DROPPED,
            f"cannot reach {host} port {port} ({type(exc).__name__}: {exc});"
            " check the URL, the proxy and the network, then retry",
        ) from None
