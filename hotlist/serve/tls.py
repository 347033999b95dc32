"""TLS for the patrol API, both ends: what ``hotlist serve`` presents and ``hotlist pull``
trusts, and where plain HTTP is allowed at all.

Hotlist records are criminal justice information: CJIS wants them encrypted wherever they
cross a network. So plain HTTP is for loopback alone (:func:`is_loopback`), on the server
(``--host``) and on the client (``--server http://...``) by the same rule, unless the
operator says otherwise (``--allow-plain-http``: TLS ends in front of the process on the
same host, e.g. a container's published port bound to loopback on the host).

Both contexts are TLS 1.2 or later. A private key must be readable by its owner alone
(mode 0600, as OpenSSH asks of its keys): a key that other users can read is refused,
not warned about, because a warning scrolls by and the key stays exposed. The files are
read and checked here, before anything listens or connects, so a wrong path, a key that
is not the certificate's, or a certificate that is not PEM is named at once.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from hotlist.config import ConfigError

#: A certificate that expires sooner than this is warned about when the server starts.
EXPIRY_WARNING = dt.timedelta(days=14)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (127.0.0.0/8, ::1).

    A name is resolved; one that does not resolve, or resolves to any other address
    (``0.0.0.0`` and ``::`` are every address), is not loopback."""
    host = host.strip("[]")
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(_loopback_address(a) for a in addresses)


def _loopback_address(text: str) -> bool:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def plain_listen_refusal(host: str) -> str | None:
    """Why ``hotlist serve --host HOST`` may not serve plain HTTP; None on loopback."""
    if is_loopback(host):
        return None
    return (
        f"--host {host} is not a loopback address, and plain HTTP would carry criminal"
        " justice information unencrypted over the network (CJIS). Give --certfile and"
        " --keyfile to serve HTTPS; or listen on 127.0.0.1 behind a TLS-terminating proxy"
        " on this host; or, when TLS ends in front of this process on this host (a"
        " container whose port is published on the host's loopback only), pass"
        " --allow-plain-http"
    )


def plain_server_refusal(server: str) -> str | None:
    """Why the client may not send its key and fetch records over ``server``; None when
    it is https:// or loopback."""
    parts = urlsplit(server)
    if parts.scheme == "https":
        return None
    if parts.scheme != "http" or not parts.hostname:
        return f"--server {server!r} is not an https:// (or http://) URL"
    if is_loopback(parts.hostname):
        return None
    return (
        f"--server {server} is plain http:// to {parts.hostname}, which is not a loopback"
        " address: the API key and the records would cross the network unencrypted (CJIS)."
        " Use https:// (with --ca-file when the server's certificate authority is not in"
        " the system store), or pass --allow-plain-http when the connection is encrypted"
        " below HTTP (an agency VPN or TLS tunnel)"
    )


def _readable(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror})") from None


def _private_key(path: Path, what: str) -> bytes:
    """The key's bytes, once it is known to be readable by its owner alone."""
    data = _readable(path, what)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{what} {path} can be read by other users (mode {mode:o}); a private key must"
            f" be readable by its owner alone: chmod 600 {path}"
        )
    return data


def _certificates(data: bytes, path: Path, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{what} {path} is not a PEM certificate") from None


def _check_pair(certfile: Path, keyfile: Path, what: tuple[str, str]) -> x509.Certificate:
    """The leaf certificate, once the key is known to be private, readable, and its own."""
    [cert, *_] = _certificates(_readable(certfile, what[0]), certfile, what[0])
    pem = _private_key(keyfile, what[1])
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # the key is encrypted
        raise ConfigError(
            f"{what[1]} {keyfile} is encrypted; give it unencrypted, mode 0600 (openssl pkey"
            f" -in {keyfile} -out NEW.key)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{what[1]} {keyfile} is not a PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != cert.public_key().public_bytes(der, public):
        raise ConfigError(
            f"{what[1]} {keyfile} is not the key of {what[0]} {certfile} (subject"
            f" {cert.subject.rfc4514_string()}): give the key the certificate was issued for"
        )
    return cert


def _load_chain(context: ssl.SSLContext, certfile: Path, keyfile: Path, what: str) -> None:
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:  # checked above; what OpenSSL still refuses
        raise ConfigError(f"{what} {certfile} cannot be used ({exc})") from None


@dataclass(frozen=True)
class ServerTls:
    """What ``hotlist serve`` serves HTTPS with: its context, and what to warn about."""

    context: ssl.SSLContext
    warnings: tuple[str, ...]


def server_tls(
    certfile: Path, keyfile: Path, client_ca: Path | None = None, now: dt.datetime | None = None
) -> ServerTls:
    """TLS 1.2+ with ``certfile`` (the server certificate, then its chain) and ``keyfile``;
    with ``client_ca``, a client must present a certificate that CA issued (mutual TLS),
    else the handshake fails."""
    cert = _check_pair(certfile, keyfile, ("certfile", "keyfile"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, certfile, keyfile, "certfile")
    if client_ca is not None:
        _certificates(_readable(client_ca, "client_ca"), client_ca, "client_ca")
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    now = now or dt.datetime.now(dt.UTC)
    warnings = []
    if cert.not_valid_after_utc < now + EXPIRY_WARNING:
        warnings.append(
            f"certfile {certfile} expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
            " (clients refuse an expired certificate): renew it"
        )
    return ServerTls(context, tuple(warnings))


def client_context(
    ca_file: Path | None, client_cert: Path | None, client_key: Path | None
) -> ssl.SSLContext:
    """TLS 1.2+, the server verified (chain and host name) against ``ca_file``, else the
    system's trusted CAs; ``client_cert``/``client_key`` presented when given."""
    if (client_cert is None) != (client_key is None):
        raise ConfigError("--client-cert and --client-key go together: give both, or neither")
    try:
        if ca_file is not None:
            _certificates(_readable(ca_file, "--ca-file"), ca_file, "--ca-file")
        context = ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ConfigError(f"--ca-file {ca_file} cannot be used ({exc})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None and client_key is not None:
        _check_pair(client_cert, client_key, ("--client-cert", "--client-key"))
        _load_chain(context, client_cert, client_key, "--client-cert")
    return context


def tls_refusal(
    exc: BaseException, server: str, ca_file: Path | None, has_cert: bool
) -> str | None:
    """What went wrong, when ``exc`` is a TLS failure that retrying will not mend: the
    server's certificate did not verify, or the server refused the handshake. None for
    anything else (a network failure, a connection cut mid-handshake)."""
    found: BaseException | None = exc
    while found is not None and not isinstance(found, ssl.SSLError):
        found = found.__cause__ or found.__context__
    if found is None or isinstance(found, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return None
    parts = urlsplit(server)
    where = f"{parts.hostname} port {parts.port or 443}"
    if isinstance(found, ssl.SSLCertVerificationError):
        trusted = f"--ca-file {ca_file}" if ca_file is not None else "the system's trusted CAs"
        why = found.verify_message or found.reason or "verification failed"
        return (
            f"the TLS certificate of {where} did not verify against {trusted} ({why});"
            " refusing an unverified server, nothing was pulled. Give --ca-file with the"
            " certificate of the authority that issued the server's certificate, and a"
            " --server name the certificate is issued for"
        )
    reason = str(found.reason or found)
    certificate = any(a in reason.upper() for a in ("CERTIFICATE", "UNKNOWN_CA", "HANDSHAKE"))
    if certificate and not has_cert:
        hint = "; if the server requires a client certificate, give --client-cert and --client-key"
    elif certificate:
        hint = "; the server may not accept --client-cert (not issued by the CA it trusts?)"
    else:
        hint = ""
    return f"the TLS handshake with {where} failed ({reason}); nothing was pulled{hint}"


def closed_hint(exc: BaseException, server: str, has_cert: bool) -> str:
    """A hint for an https:// server that closed the connection without a word.

    A server refusing a client's certificate (none, or one from a CA it does not trust)
    closes the connection without the TLS alert that would say so (Python's asyncio, which
    serves the API, does not send it): that is all the client sees, during the handshake
    (TLS 1.2) or right after it (TLS 1.3)."""
    if not server.startswith("https://"):
        return ""
    found: BaseException | None = exc
    while found is not None:
        if isinstance(found, ssl.SSLEOFError) or "disconnected without" in str(found):
            break
        found = found.__cause__ or found.__context__
    if found is None:
        return ""
    if has_cert:
        return (
            "; a server that requires client certificates closes the connection so when it"
            " does not trust --client-cert (not issued by its client CA?)"
        )
    return (
        "; a server that requires client certificates (mutual TLS) closes the connection so"
        " when none is presented: give --client-cert and --client-key"
    )
