"""TLS and credentials for ``https://`` sources: whom we trust, and what we present.

The server's certificate is always verified (hostname and chain) against the system's
trusted CAs, or against ``ca_file`` alone when it is set. ``tls_pin`` pins the public key
of the certificate the server presents (``sha256/`` + base64 of its SubjectPublicKeyInfo's
SHA-256: the hash curl's ``--pinnedpubkey sha256//...`` takes): checked on every connection
right after the handshake, before any request (or credential) is sent on it, so before any
byte of a response is believed. A pin that does not match, like a certificate that does not
verify, is refused at once (never retried), with what the server presented and how to
accept a change once it is confirmed out of band, as a changed SSH host key is.

Credentials (``auth``): ``basic`` (``user:password``), ``bearer`` (a token), or
``client-certificate`` (``client_cert``/``client_key``; the credential, if any, is the
key's passphrase). They are read from a Prefect Secret block (``credentials_secret``) or
an environment variable (``credentials_env``), never from the configuration file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hotlist.config import SourceConfig
from hotlist.sources import FetchError, FetchFailure

#: A bearer token's characters (RFC 6750 section 2.1, b64token).
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: The shell pipeline that prints a server's pin, for the refusal messages.
PIN_COMMAND = (
    "openssl s_client -connect {host}:{port} -servername {host} </dev/null 2>/dev/null"
    " | openssl x509 -pubkey -noout | openssl pkey -pubin -outform der"
    " | openssl dgst -sha256 -binary | base64"
)


def tls_context(source: SourceConfig, credential: str | None) -> ssl.SSLContext:
    """Verify hostname and chain (TLS 1.2+); present the client certificate if configured."""
    try:
        if source.ca_file is not None:
            context = ssl.create_default_context(cafile=source.ca_file)
        else:
            context = ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise FetchError(
            FetchFailure.CONFIG, f"ca_file {source.ca_file} is not a readable PEM CA file ({exc})"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if source.client_cert is not None:
        _load_client_certificate(context, source, credential)
    return context


def _load_client_certificate(
    context: ssl.SSLContext, source: SourceConfig, passphrase: str | None
) -> None:
    if source.client_cert is None:
        return
    key = source.client_key or source.client_cert
    try:
        mode = key.stat().st_mode
    except OSError:
        raise FetchError(FetchFailure.CONFIG, f"client key {key} cannot be read") from None
    if mode & 0o077:
        raise FetchError(
            FetchFailure.CONFIG,
            f"client key {key} is accessible by other users (mode {stat.S_IMODE(mode):o});"
            f" run chmod 600 {key}",
        )
    try:
        context.load_cert_chain(source.client_cert, source.client_key, password=passphrase)
    except (OSError, ssl.SSLError) as exc:
        hint = "" if passphrase else " (an encrypted key needs its passphrase as the credential)"
        raise FetchError(
            FetchFailure.CONFIG,
            f"client_cert {source.client_cert} with key {key} cannot be loaded"
            f" ({type(exc).__name__}){hint}",
        ) from None


def credential(source: SourceConfig) -> str | None:
    """The credential's value, from the environment variable or the Prefect Secret block."""
    if source.credentials_env:
        value = os.environ.get(source.credentials_env)
        if not value:
            raise FetchError(
                FetchFailure.CONFIG,
                f"credentials_env names {source.credentials_env}, which is not set or empty",
            )
        return value
    if source.credentials_secret:
        from prefect.blocks.system import Secret

        try:
            found = Secret.load(source.credentials_secret).get()  # type: ignore[union-attr]
        except ValueError:
            raise FetchError(
                FetchFailure.CONFIG,
                f"credentials_secret: no Prefect Secret block named {source.credentials_secret!r}",
            ) from None
        return str(found)
    return None


def http_auth(source: SourceConfig, value: str | None) -> str | None:
    """The ``Authorization`` header's value: basic (``user:password``) or bearer; None for
    no credentials or a client certificate."""
    if source.auth == "bearer" and value:
        token = value.strip()
        if not _TOKEN68.fullmatch(token):
            raise FetchError(  # the value itself is never quoted: it is a secret
                FetchFailure.CONFIG,
                "auth = 'bearer': the credential is not a bearer token (letters, digits and"
                " -._~+/ then optional =; no spaces or line breaks)",
            )
        return f"Bearer {token}"
    if source.auth == "basic" and value:
        user, colon, password = value.partition(":")
        if not colon:
            raise FetchError(
                FetchFailure.CONFIG,
                "auth = 'basic': the credential must be user:password (it has no colon)",
            )
        pair = f"{user}:{password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    return None


def spki_pin_of(der: bytes) -> tuple[str, x509.Certificate]:
    """``sha256/<base64>`` of a DER certificate's public key, and the parsed certificate."""
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"), cert


def check_pin(der: bytes | None, source: SourceConfig, host: str, port: int) -> None:
    """Refuse a connection whose certificate (DER, as the handshake brought it) does not
    carry a pinned key."""
    if not source.tls_pin:
        return
    if not der:
        raise FetchError(
            FetchFailure.TLS_REFUSED,
            f"{host} port {port}: the server's certificate could not be read to check tls_pin;"
            " nothing was fetched",
        )
    presented, cert = spki_pin_of(der)
    if presented in source.tls_pin:
        return
    pinned = ", ".join(source.tls_pin)
    raise FetchError(
        FetchFailure.TLS_PIN_MISMATCH,
        f"the TLS key of {host} port {port} changed: it presented {presented} (subject"
        f" {cert.subject.rfc4514_string()}, issuer {cert.issuer.rfc4514_string()}, valid until"
        f" {cert.not_valid_after_utc:%Y-%m-%d}), tls_pin pins {pinned}. Someone may be in the"
        " middle, or the site renewed its key: fetch nothing until the new key is confirmed"
        " with the site's operator out of band, then set tls_pin to it (or list both while"
        f" the site changes over); `{PIN_COMMAND.format(host=host, port=port)}` prints the key"
        " a server presents",
    )


def presented_key(host: str, port: int, timeout_s: float) -> str:
    """What the server presents, read without verifying (to say so in a refusal), or ""."""
    try:
        pem = ssl.get_server_certificate((host, port), timeout=timeout_s)
        pin, cert = spki_pin_of(ssl.PEM_cert_to_DER_cert(pem))
    except (OSError, ValueError):
        return ""
    return (
        f"; it presented {pin} (subject {cert.subject.rfc4514_string()}, issuer"
        f" {cert.issuer.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d})"
    )


def tls_failure(
    exc: BaseException, source: SourceConfig, host: str, port: int, *, direct: bool
) -> FetchError | None:
    """A FetchError for a certificate that did not verify or a handshake refused; else None.

    ``direct``: no proxy in between, so the certificate can be read again to name it."""
    found: BaseException | None = exc
    while found is not None and not isinstance(found, ssl.SSLError):
        found = found.__cause__ or found.__context__
    if found is None or isinstance(found, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return None  # the connection ended mid-handshake: a network failure, retried
    trusted = f"ca_file {source.ca_file}" if source.ca_file else "the system's trusted CAs"
    if isinstance(found, ssl.SSLCertVerificationError):
        why = found.verify_message or found.reason or "verification failed"
        presented = presented_key(host, port, source.connect_timeout_s) if direct else ""
        return FetchError(
            FetchFailure.TLS_REFUSED,
            f"the TLS certificate of {host} port {port} did not verify against {trusted}"
            f" ({why}){presented}; refusing an unverified server, nothing was fetched. If the"
            " site changed"
            " its certificate or its certificate authority, confirm the new one with the site's"
            f" operator out of band (`{PIN_COMMAND.format(host=host, port=port)}` prints its"
            " key), then put the issuing CA's certificate in ca_file (and the new key in"
            " tls_pin, if one is set)",
        )
    reason = found.reason or type(found).__name__
    hint = (
        "; the site wants a client certificate: set auth = 'client-certificate' and client_cert"
        if "CERTIFICATE_REQUIRED" in str(reason).upper() or "ALERT" in str(reason).upper()
        else ""
    )
    return FetchError(
        FetchFailure.TLS_REFUSED,
        f"the TLS handshake with {host} port {port} failed ({reason}); nothing was fetched{hint}",
    )


def client_cert_path_problems(paths: tuple[Path | None, ...]) -> list[str]:
    """Configured TLS files that do not exist (checked before any connection)."""
    return [f"{path} does not exist" for path in paths if path is not None and not path.is_file()]
