"""The API's HTTP/1.1 protocol: uvicorn's httptools (C) parser, with the request head bounded.

uvicorn bounds a request's head only with its pure-Python parser (h11), which costs a
large share of a lookup's CPU. httptools accumulates a head, and any one header's value,
for as long as a client sends it: this protocol counts the bytes received while a head is
incomplete and answers 431, closing the connection, once they pass ``MAX_HEAD_BYTES``.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Bytes of a request's head (request line and headers) buffered before refusing.
MAX_HEAD_BYTES = 16 * 1024

_REFUSAL = b"Request head too large"


class BoundedHeadProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(_REFUSAL)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + _REFUSAL
            )
            self.transport.close()
