"""Configuration: one TOML file (``--config`` or ``HOTLIST_CONFIG``) plus environment overrides.

Environment overrides use ``HOTLIST_`` + the dotted key in upper case with ``__`` between
levels, e.g. ``HOTLIST_DATA_DIR=/var/lib/hotlist`` or
``HOTLIST_SOURCES__NCIC__URL=sftp://hotlist@drop:22/outbound``. Values are parsed as TOML
values when they parse (``["V","P"]``, ``0.05``), else taken as strings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hotlist.access import normalize_purpose, purpose_error

ENV_PREFIX = "HOTLIST_"
CONFIG_ENV = "HOTLIST_CONFIG"

#: Hit types that may never be loaded, whatever the configuration says (SB 54).
FORBIDDEN_HIT_TYPES = frozenset({"N"})
KNOWN_HIT_TYPES = frozenset("VPFRAMWCHKLTXBN")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedGuards(_Strict):
    """Per-source safety limits for applying a snapshot (docs/formats.md section 4)."""

    max_row_error_share: float = Field(0.01, ge=0.0, le=1.0)
    max_removal_share: float = Field(0.05, ge=0.0, le=1.0)
    freshness_hours: float = Field(12.0, gt=0.0)


class SourceConfig(_Strict):
    """One upstream: where its files are and how to read them."""

    url: str
    layout: str
    files: dict[str, str]
    hit_types: tuple[str, ...] = ()
    private_key: Path | None = None
    known_hosts: Path | None = None
    #: Name of a Prefect Secret block holding the private key's passphrase (else the
    #: environment variable HOTLIST_SFTP_PASSPHRASE); never a passphrase in this file.
    passphrase_secret: str | None = None
    connect_timeout_s: float = Field(15.0, gt=0.0)
    read_timeout_s: float = Field(60.0, gt=0.0)
    #: How often ``hotlist watch`` stats the files for a change (no content is read).
    poll_seconds: float = Field(60.0, ge=1.0)
    guards: FeedGuards = FeedGuards()
    # -- https:// sources (docs/architecture.md, "The HTTPS source") --------------------
    #: CA certificates (PEM) trusted instead of the system store.
    ca_file: Path | None = None
    #: Pinned public keys, ``sha256/<base64 of the SPKI's SHA-256>``; one of them must match.
    tls_pin: tuple[str, ...] = ()
    auth: Literal["none", "basic", "bearer", "client-certificate"] = "none"
    #: Where the credential is (``user:password``, a token, or a client key's passphrase):
    #: a Prefect Secret block's name, or an environment variable's name; never the value.
    credentials_secret: str | None = None
    credentials_env: str | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    #: ``http://host:port`` of a proxy (else HTTPS_PROXY / NO_PROXY from the environment).
    proxy: str | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if url.startswith("http://"):
            raise ValueError("url must be https:// (TLS is always verified), not http://")
        if not url.startswith(("file://", "sftp://", "https://")):
            raise ValueError("url must start with file://, sftp:// or https://")
        if url.startswith("https://") and "@" in url.split("/", 3)[2]:
            raise ValueError(
                "an https:// url carries credentials; keep them out of the configuration file"
                " (auth with credentials_env or credentials_secret)"
            )
        return url

    @field_validator("tls_pin", mode="before")
    @classmethod
    def _pins(cls, pins: object) -> object:
        import base64

        def well_formed(pin: object) -> bool:
            algorithm, _, encoded = str(pin).partition("/")
            try:
                return algorithm == "sha256" and len(base64.b64decode(encoded, validate=True)) == 32
            except ValueError:
                return False

        pins = (pins,) if isinstance(pins, str) else pins
        for pin in pins if isinstance(pins, list | tuple) else ():
            if not isinstance(pin, str) or not well_formed(pin):
                raise ValueError(
                    f"tls_pin {pin!r} is not sha256/<base64 of 32 bytes>, the SHA-256 of the"
                    " certificate's public key (SubjectPublicKeyInfo)"
                )
        return pins

    @field_validator("credentials_env")
    @classmethod
    def _credential_variable(cls, name: str | None) -> str | None:
        if name is not None and (not name.isidentifier() or not name.isascii()):
            raise ValueError(f"{name!r} is not an environment variable name")
        if name is not None and name.upper().startswith(ENV_PREFIX):
            raise ValueError(
                f"{name!r} starts with {ENV_PREFIX}, which configures hotlist itself; name a"
                " variable outside that prefix"
            )
        return name

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, proxy: str | None) -> str | None:
        from urllib.parse import urlsplit

        if proxy is None:
            return None
        parts = urlsplit(proxy)
        if parts.scheme == "https":
            raise ValueError(
                f"proxy {proxy!r}: TLS to the proxy itself is not supported; give its"
                " http://host:port (the tunnel through it to the source is TLS all the same)"
            )
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"proxy {proxy!r} is not an http://host:port URL")
        if parts.username or parts.password:
            raise ValueError(
                "proxy carries credentials; keep them out of the configuration file (set"
                " HTTPS_PROXY in the environment instead)"
            )
        return proxy

    @model_validator(mode="after")
    def _https_credentials(self) -> SourceConfig:
        has_credential = bool(self.credentials_secret or self.credentials_env)
        if self.auth in {"basic", "bearer"} and not has_credential:
            raise ValueError(
                f"auth = {self.auth!r} needs credentials_secret (a Prefect Secret block) or"
                " credentials_env (an environment variable's name)"
            )
        if (self.auth == "client-certificate") != (self.client_cert is not None):
            raise ValueError('client_cert is set exactly when auth = "client-certificate"')
        return self

    @model_validator(mode="after")
    def _sftp_is_pinned(self) -> SourceConfig:
        if self.url.startswith("sftp://") and (
            self.known_hosts is None or self.private_key is None
        ):
            raise ValueError(
                "an sftp:// source needs known_hosts (the pinned server key) and private_key"
            )
        return self

    @field_validator("hit_types")
    @classmethod
    def _lawful_hit_types(cls, hit_types: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(hit_types) - KNOWN_HIT_TYPES)
        if unknown:
            raise ValueError(
                f"unknown hit types {unknown}; known: {''.join(sorted(KNOWN_HIT_TYPES))}"
            )
        # N (immigration violator) is dropped silently here and refused again at parse time:
        # no configuration can load it (SB 54).
        return tuple(h for h in hit_types if h not in FORBIDDEN_HIT_TYPES)


DEFAULT_PURPOSES = ("investigation", "patrol", "stolen-vehicle-recovery", "amber-alert")


class PolicyConfig(_Strict):
    """The operator's parts of the SB 34 usage and privacy policy (``hotlist/policy.py``
    builds the rest from what the code enforces); a part left out is shown "not stated"."""

    agency_name: str | None = None
    #: Title of the official custodian of the system (Civil Code 1798.90.51(b)(2)(E)).
    custodian_title: str | None = None
    #: Job titles or designations of the people authorized to use the data.
    authorized_roles: tuple[str, ...] = ()
    #: The training those people must complete before access.
    training: str | None = None
    #: Where the public asks about the policy or reports an error in the data.
    contact: str | None = None


class AccessConfig(_Strict):
    """Who may see hotlist data and why (SB 34 usage and privacy policy)."""

    purposes: tuple[str, ...] = DEFAULT_PURPOSES
    privacy_policy: Path | None = None
    policy: PolicyConfig = PolicyConfig()

    @field_validator("purposes")
    @classmethod
    def _lawful_purposes(cls, purposes: tuple[str, ...]) -> tuple[str, ...]:
        errors = [f"{p!r}: {why}" for p in purposes if (why := purpose_error(p))]
        if errors:
            raise ValueError("; ".join(errors))
        return tuple(dict.fromkeys(normalize_purpose(p) for p in purposes))


class PurgeConfig(_Strict):
    """Deletion propagation (NCIC MOU): how fast local copies must be purged."""

    sla_hours: float = Field(1.0, gt=0.0)
    #: A patrol system must drop a removed record within this many hours.
    consumer_sla_hours: float = Field(12.0, gt=0.0)
    #: Further directories to verify (e.g. a Prefect result store outside PREFECT_HOME).
    scan_paths: tuple[Path, ...] = ()
    #: A block device or image that holds data_dir: searched for removed plates before
    #: they are marked purged (for auditors; the freed blocks a filesystem keeps).
    raw_device: Path | None = None
    #: How long a purge waits for every live ``hotlist serve`` replica to confirm that it
    #: serves the new version (with ``[serve] database_url``); one that does not fails it.
    replica_wait_s: float = Field(30.0, gt=0.0, le=600.0)


class AuditConfig(_Strict):
    """The SB 34 access log: how long its sealed monthly segments are kept."""

    #: CJIS asks for at least a year; two years by default.
    retention_months: int = Field(24, ge=12)


class ServeConfig(_Strict):
    """Where the patrol API keeps its state (``docs/deploy.md``).

    Without ``database_url`` everything is local to ``data_dir`` (one machine, the demo).
    With it, consumers, keys, acknowledgements, pull stamps and the SB 34 access log live
    in PostgreSQL, shared by every ``hotlist serve`` replica and the command line."""

    #: ``postgresql://user@host:port/db`` (a password comes from ``PGPASSWORD`` or
    #: ``~/.pgpass``, never from this file).
    database_url: str | None = None
    #: The published versions, on storage every replica reads (default data_dir/published).
    published_dir: Path | None = None
    #: HTTPS (``docs/api.md``, "TLS"): the server certificate (PEM, then its chain) and its
    #: key (mode 0600); ``client_ca`` requires client certificates it issued (mutual TLS).
    #: ``hotlist serve --certfile/--keyfile/--client-ca`` override them.
    certfile: Path | None = None
    keyfile: Path | None = None
    client_ca: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        from urllib.parse import parse_qs, urlsplit

        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in {"postgresql", "postgres"}:
            raise ValueError(f"database_url must be postgresql://..., not {parts.scheme or url!r}")
        if parts.password or {"password", "sslpassword"} & set(parse_qs(parts.query)):
            raise ValueError(
                "database_url carries a password; keep it out of the configuration file"
                " (PGPASSWORD or ~/.pgpass)"
            )
        return url

    @model_validator(mode="after")
    def _tls_files(self) -> ServeConfig:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together: give both, or neither")
        if self.client_ca is not None and self.certfile is None:
            raise ValueError("client_ca (mutual TLS) needs certfile and keyfile (HTTPS)")
        return self


class Settings(_Strict):
    """The whole configuration."""

    data_dir: Path = Path("data")
    serve: ServeConfig = ServeConfig()
    access: AccessConfig = AccessConfig()
    purge: PurgeConfig = PurgeConfig()
    audit: AuditConfig = AuditConfig()
    sources: dict[Literal["svs", "ncic"], SourceConfig]

    @property
    def published_dir(self) -> Path:
        """Where published versions are written, served from, and erased."""
        return self.serve.published_dir or self.data_dir / "published"

    def source(self, name: str) -> SourceConfig:
        try:
            return self.sources[name]  # type: ignore[index]
        except KeyError:
            raise ConfigError(
                f"source {name!r} is not configured; add a [sources.{name}] table"
            ) from None


DEFAULT_SOURCES: dict[str, dict[str, Any]] = {
    "svs": {
        "url": "file:///srv/drop/svs",
        "layout": "clew-svs",
        "files": {"svs": "svs.tbl", "sfr": "sfr.tbl", "slr": "slr.tbl"},
    },
    "ncic": {
        "url": "file:///srv/drop/ncic",
        "layout": "ncic-fixed",
        "files": {"ncic": "VEHEXTRT.txt"},
        "hit_types": ["V", "P", "F", "R", "A", "M"],
    },
}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _source_with_defaults(name: str, body: Any) -> Any:
    if not isinstance(body, Mapping):
        return body
    merged = _merge(DEFAULT_SOURCES.get(name, {}), body)
    if "files" in body:  # a file list given replaces the default one whole
        merged["files"] = body["files"]
    return merged


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``HOTLIST_A__B=value`` variables into a nested mapping ``{a: {b: value}}``."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        if name in {"HOTLIST_SFTP_PASSPHRASE"} or name.startswith("HOTLIST_FAULT"):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(raw)
    return out


def _require_explicit_data_dir(environ: Mapping[str, str]) -> None:
    """Without a configuration file, only an absolute HOTLIST_DATA_DIR says where the data
    is: a hotlist never guesses (a guessed ./data is an empty hotlist that answers "no
    hits", and a copy of state wherever the command happened to run)."""
    given = environ.get(f"{ENV_PREFIX}DATA_DIR", "")
    if not given:
        raise ConfigError(
            "no configuration: pass --config PATH or set HOTLIST_CONFIG to the TOML file"
            " (see the README, Configuration); hotlist does not guess where its data is"
        )
    if not Path(given).is_absolute():
        raise ConfigError(
            f"HOTLIST_DATA_DIR={given!r} is relative and there is no configuration file to"
            " be relative to; give an absolute path, or pass --config PATH"
        )


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the configuration file, apply defaults and environment overrides.

    The file is ``path``, else ``HOTLIST_CONFIG``; without either, the environment must
    name an absolute ``HOTLIST_DATA_DIR`` (the rest then comes from the built-in defaults
    and ``HOTLIST_`` variables), else :class:`ConfigError`.
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_ENV):
        if environ[CONFIG_ENV].startswith("{{"):
            raise ConfigError(
                f"HOTLIST_CONFIG is the unfilled template {environ[CONFIG_ENV]!r}: it was not"
                " set in the shell that ran `prefect deploy`; set it there and deploy again"
            )
        path = Path(environ[CONFIG_ENV])
    if path is None:
        _require_explicit_data_dir(environ)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    raw = _merge(raw, env_overrides(environ))
    sources = raw.get("sources", {})
    if not isinstance(sources, dict):
        raise ConfigError("'sources' must be a table")
    raw["sources"] = {
        name: _source_with_defaults(name, body) for name, body in sources.items()
    } or {name: dict(body) for name, body in DEFAULT_SOURCES.items()}
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration{where}: {problems}") from None
    base = path.parent if path is not None else Path.cwd()
    if not settings.data_dir.is_absolute():
        settings = settings.model_copy(update={"data_dir": (base / settings.data_dir).resolve()})
    relative = {
        name: (base / given).resolve()
        for name in ("published_dir", "certfile", "keyfile", "client_ca")
        if (given := getattr(settings.serve, name)) is not None and not given.is_absolute()
    }
    if relative:
        settings = settings.model_copy(update={"serve": settings.serve.model_copy(update=relative)})
    if os.path.lexists(settings.data_dir) and not settings.data_dir.is_dir():
        # Else readers fail deep inside with a traceback, and writers cannot create it.
        raise ConfigError(
            f"data_dir {settings.data_dir} is not a directory (a file, or a symlink to"
            " nothing): point data_dir at the hotlist's directory"
        )
    return settings
