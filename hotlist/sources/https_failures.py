"""What an ``https://`` source's failures mean: HTTP statuses and transport errors.

:func:`refusal` turns a status that is not a table into a :class:`FetchError` saying what
to do (401/403, other 4xx and redirects fail at once; 5xx, 408 and 429 are transient and
Prefect retries them). :func:`translated` turns the connection's errors
(:mod:`hotlist.sources.https_connection`) into the same: TLS and pin failures
(:mod:`hotlist.sources.https_tls`) and timeouts before any answer fail, a site never
reached is transient, while a connection that breaks once connected is :class:`Dropped`,
for the caller to resume.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from hotlist.config import SourceConfig
from hotlist.sources import FetchError, FetchFailure
from hotlist.sources.https_connection import Answer, BadRequest, TunnelRefused, Unreached
from hotlist.sources.https_progress import PartFileError, Progress
from hotlist.sources.https_tls import tls_failure


class Dropped(Exception):
    """The connection broke after the response began."""


def refusal(response: Answer, url: str, source: SourceConfig) -> FetchError:
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
        location = urlsplit(response.headers.get("Location") or "")
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
    """The connection's errors inside the block as a :class:`FetchError`, or :class:`Dropped`."""
    try:
        yield
    except PartFileError as exc:  # the disk's failure, raised as the other sources raise it
        raise exc.cause from None
    except TunnelRefused as exc:
        kind = FetchFailure.CONFIG if exc.status == 407 else FetchFailure.CONNECTION_DROPPED
        raise FetchError(kind, f"the proxy refused the tunnel to {host}: {exc}") from None
    except Unreached as exc:
        if isinstance(exc.cause, TimeoutError):
            raise FetchError(
                FetchFailure.TIMEOUT,
                f"{host} port {port} did not answer within"
                f" {source.connect_timeout_s:g} s (connect_timeout_s) for {url};"
                " retry later, or raise connect_timeout_s",
            ) from None
        refused = tls_failure(exc.cause, source, host, port, direct=not proxied)
        if refused is not None:
            raise refused from None
        raise FetchError(
            FetchFailure.CONNECTION_DROPPED,
            f"cannot reach {host} port {port} ({exc}); check the URL, the proxy and the"
            " network, then retry",
        ) from None
    except BadRequest:  # the offending value is not quoted: it may be a secret
        raise FetchError(
            FetchFailure.CONFIG,
            f"hotlist could not build a valid request for {url}"
            " (a header value or the path holds a line break or a control character);"
            " check the credential's form",
        ) from None
    except TimeoutError as exc:  # a read, once connected
        if state.total is None and not state.received:  # no answer at all: no resumption
            raise FetchError(
                FetchFailure.TIMEOUT,
                f"{host} port {port} did not answer {url} within"
                f" {source.read_timeout_s:g} s (read_timeout_s); retry later, or raise"
                " read_timeout_s",
            ) from None
        raise Dropped(type(exc).__name__) from exc
    except (OSError, http.client.HTTPException) as exc:  # reset, cut short, garbled
        refused = tls_failure(exc, source, host, port, direct=not proxied)
        if refused is not None:
            raise refused from None
        raise Dropped(type(exc).__name__) from exc
