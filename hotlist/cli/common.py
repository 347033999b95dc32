"""What every command shares: consoles, options, exit codes, and the one way to fail.

Exit codes, the same for every command:

* 0: done;
* 1: the operation failed, or found a problem (a verification finding, a broken log);
* 2: bad input or configuration (what typer answers for a bad option, too);
* 3: no fresh hotlist: a feed is stale, or no hotlist is loaded where the configuration
  points;
* 4: refused by the access policy (SB 34, SB 54).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import unicodedata
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any, NamedTuple, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from hotlist.config import Settings, load_settings
from hotlist.store import control_path, private_dir

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class ReportFormat(StrEnum):
    """The formats of the reports (deletions, usage audit)."""

    html = "html"
    csv = "csv"
    json = "json"


class ExitCode(IntEnum):
    FAILED = 1
    USAGE = 2
    NOT_FRESH = 3
    REFUSED = 4


def problem(label: str, message: str) -> None:
    """One problem on standard error, ``label: message``: how every error is shown."""
    err.print(f"[bold red]{escape(label)}:[/bold red] {escape(message)}")


def fail(message: str, code: ExitCode = ExitCode.FAILED, label: str = "error") -> NoReturn:
    """Say what went wrong (see :func:`problem`) and exit with ``code``."""
    problem(label, message)
    raise typer.Exit(int(code))


def cells(*values: object) -> list[str]:
    """Table cells as plain text: a name or a file name like ``[/x]`` is not markup."""
    return [escape(str(value)) for value in values]


def warn(message: str) -> None:
    err.print(f"[yellow]warning: {escape(message)}[/yellow]")


class KnownError(NamedTuple):
    """An error the library raises on purpose, its message written for the operator."""

    module: str
    name: str
    label: str
    code: ExitCode


#: How the command line shows the library's own errors. A class is looked up only in a
#: module already imported: an error of a module never imported cannot have been raised,
#: and rendering an error must not import Prefect or polars.
KNOWN_ERRORS = (
    KnownError("hotlist.config", "ConfigError", "configuration error", ExitCode.USAGE),
    KnownError("hotlist.sources", "FetchError", "fetch failed", ExitCode.FAILED),
    KnownError("hotlist.purge", "PurgeIncomplete", "purge incomplete", ExitCode.FAILED),
    KnownError("hotlist.serve.consumers", "ConsumerError", "consumers", ExitCode.FAILED),
    KnownError("hotlist.serve.client", "PullError", "pull refused", ExitCode.FAILED),
    KnownError("hotlist.lookup", "NoHotlistLoaded", "lookup failed", ExitCode.NOT_FRESH),
    KnownError("hotlist.lookup", "BadQuery", "bad query", ExitCode.USAGE),
    KnownError("hotlist.feed_clock", "ClockError", "clock not reset", ExitCode.FAILED),
    KnownError("hotlist.store.control", "NoStore", "no store", ExitCode.NOT_FRESH),
    KnownError("hotlist.store.lock", "StoreBusy", "store busy", ExitCode.FAILED),
    KnownError("hotlist.pg", "DatabaseUnavailable", "database", ExitCode.FAILED),
    KnownError("hotlist.pg", "SchemaNotCurrent", "database schema", ExitCode.FAILED),
)


def known_error(exc: BaseException) -> KnownError | None:
    for known in KNOWN_ERRORS:
        cls = getattr(sys.modules.get(known.module), known.name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return known
    return None


class HotlistGroup(TyperGroup):
    """The root command: a known library error becomes its message and exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            known = known_error(exc)
            if known is None:
                raise
            fail(str(exc), known.code, known.label)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML configuration (default: $HOTLIST_CONFIG; without either, an absolute $HOTLIST_DATA_DIR).",
    ),
]

PrefectHomeOption = Annotated[
    Path | None,
    typer.Option(help="Prefect's home to verify too (default: $PREFECT_HOME, else ~/.prefect)."),
]


def settings_from(config: Path | None) -> Settings:
    """The configuration; a ConfigError exits 2 through :class:`HotlistGroup`."""
    return load_settings(config)


def no_hotlist(data_dir: Path, why: str) -> NoReturn:
    fail(f"no hotlist loaded at {data_dir}: {why}", ExitCode.NOT_FRESH)


def existing_data_dir(settings: Settings) -> Path:
    """``data_dir`` for a command that only reads: it must exist, and is never created.

    A mistyped ``data_dir`` is then an error, not an empty hotlist answering "no hits".
    """
    if not settings.data_dir.is_dir():
        no_hotlist(settings.data_dir, "data_dir does not exist (is it mistyped?)")
    return settings.data_dir


def existing_store(settings: Settings) -> Path:
    """``data_dir`` for a command that reads the store's control database."""
    data_dir = existing_data_dir(settings)
    if not control_path(data_dir).is_file():
        no_hotlist(data_dir, "nothing was ever ingested there (is data_dir right?)")
    return data_dir


def writable_data_dir(settings: Settings) -> Path:
    """``data_dir`` for a command that writes: created if missing, mode 0700."""
    return private_dir(settings.data_dir)


def write_out(path: Path, data: str, option: str) -> None:
    """Write a file the operator named (mode 0600), or exit 2 saying why it cannot be."""
    from hotlist.private import write_private

    try:
        write_private(path, data)
    except OSError as exc:
        fail(f"cannot write {option} {path}: {exc.strerror or exc}", ExitCode.USAGE)


def writable_file_option(path: Path | None, option: str) -> None:
    """Check, before any work is done, that ``path`` can be written (its directory exists)."""
    if path is None:
        return
    if path.is_dir():
        fail(f"{option} {path} is a directory, not a file", ExitCode.USAGE)
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK | os.X_OK):
        fail(
            f"cannot write {option} {path}: its directory is missing or not writable",
            ExitCode.USAGE,
        )


def since_option(value: str | None) -> dt.datetime | None:
    """A --since date (YYYY-MM-DD, UTC), or exit 2 saying what is wrong with it."""
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    except ValueError:
        fail(f"--since must be a date like 2026-11-22, not {value!r}", ExitCode.USAGE)


def text_option(value: str, option: str) -> str:
    """A name given on the command line, as UTF-8 text in NFC, trimmed.

    Python decodes arguments with the locale's encoding: under a C or ASCII locale
    without UTF-8 mode, ``José`` arrives as ``Jos\\udcc3\\udca9`` and would be logged
    garbled. The argument's bytes are read back and decoded as UTF-8; bytes that are not
    UTF-8 in any locale, and control characters, are refused.
    """
    raw = os.fsencode(value)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        if any("\udc80" <= c <= "\udcff" for c in value):
            fail(f"{option} is not UTF-8 text", ExitCode.USAGE)
        text = value  # a legacy locale decoded it faithfully (e.g. Latin-1)
    text = unicodedata.normalize("NFC", text).strip()
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text):
        fail(f"{option} contains control characters", ExitCode.USAGE)
    return text
