"""Validators of an ``https://`` source's files: what makes a ``304`` trustworthy.

The validators (``ETag``, ``Last-Modified``) of the response that brought a file are
remembered beside the sha256 of its content in a JSON file outside the landing area (no
record content in it, mode 0600), and sent back as ``If-None-Match`` /
``If-Modified-Since`` only while that content is still the one taken last for the feed.
Only validators that can tell two contents apart are kept: a weak ETag never, a
``Last-Modified`` only when the response's ``Date`` is a second or more later (RFC 9110
8.8.2.2: a file rewritten within its Last-Modified second would otherwise look the same;
servers that build their ETag from mtime and size have the same blind spot, so the ETag
goes too). An unreadable file of validators only costs a full download.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hotlist.private import write_private


class Headers(Protocol):
    """A response's headers: one value of a name, or all of them."""

    def get(self, key: str, default: None = None) -> str | None: ...

    def get_list(self, key: str) -> list[str]: ...


class Response(Protocol):
    """What is read of a response here: its headers."""

    @property
    def headers(self) -> Headers: ...


@dataclass(frozen=True)
class Validators:
    """What a response said about its body's version, and that body's sha256."""

    etag: str | None
    last_modified: str | None
    sha256: str = ""

    def conditional(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    @property
    def if_range(self) -> str | None:
        return self.etag or self.last_modified


def load_validators(path: Path) -> dict[str, Validators]:
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}  # none yet, or unreadable: every file is downloaded and hashed
    return {
        name: Validators(v.get("etag"), v.get("last_modified"), str(v.get("sha256", "")))
        for name, v in raw.items()
        if isinstance(v, dict)
    }


def save_validators(path: Path, remembered: dict[str, Validators]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {name: vars(v) for name, v in sorted(remembered.items())}
    write_private(path, json.dumps(data, indent=1))


def strong_validators(response: Response) -> Validators:
    """The validators of a 200 that identify its content (see the module's docstring)."""
    etags = response.headers.get_list("ETag")
    etag = etags[0] if len(etags) == 1 else None  # repeated: which one is the body's?
    if etag is not None and (etag.startswith("W/") or not etag.startswith('"')):
        etag = None
    modified = response.headers.get("Last-Modified")
    served = http_date(response.headers.get("Date"))
    stamp = http_date(modified)
    if stamp is None or served is None or (served - stamp).total_seconds() < 1:
        # Rewritten within the second it is stamped with, a file keeps both its
        # Last-Modified and (on servers that build it from mtime and size) its ETag.
        return Validators(etag if stamp is None else None, None)
    return Validators(etag, modified)


def http_date(value: str | None) -> dt.datetime | None:
    try:
        return email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
