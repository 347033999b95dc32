"""A web page served in place of a table (a login or error page, with ``200``) is refused.

It is recognized by its ``Content-Type`` (HTML, XHTML, XML, JSON) or by its first bytes
(markup or a JSON object, after a BOM and white space), and named in the refusal by what
came back: the type, the marker found, the page's title. Nothing of a body that is not
recognized as a page is quoted (it may be records).
"""

from __future__ import annotations

import re

from hotlist.sources import FetchError, FetchFailure

NOT_TABLES = ("text/html", "application/xhtml+xml", "application/json", "text/xml")
MARKUP = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--", b"<script", b'{"')
TITLE = re.compile(rb"<title[^>]*>([^<]{1,200})", re.IGNORECASE)


def refuse_web_page(url: str, content_type: str, head: bytes) -> None:
    """A login or error page served with 200 is refused, naming what came back."""
    media = content_type.split(";")[0].strip().lower()
    lead = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    marker = next((m for m in MARKUP if lead.startswith(m)), None)
    if media not in NOT_TABLES and marker is None:
        return
    title = TITLE.search(head)
    said = []
    if media:
        said.append(f"Content-Type {media}")
    if marker is not None:
        said.append(f"a body beginning {marker.decode()!r}")
    if title is not None:
        text = title[1].decode("utf-8", "replace").strip()[:80]
        said.append(f"titled {''.join(c for c in text if c.isprintable())!r}")
    raise FetchError(
        FetchFailure.NOT_A_TABLE,
        f"{url} answered 200 with {', '.join(said)}: a web page (a login or error page?),"
        " not a table; it was not parsed and nothing was kept; check the credentials and the"
        " file's path",
    )
