"""The API's HTTP/1.1 protocol: uvicorn's httptools (C) parser, the request head bounded,
and an answer's head and body sent in one write.

uvicorn bounds a request's head only with its pure-Python parser (h11), which costs a
large share of a lookup's CPU. httptools accumulates a head, and any one header's value,
for as long as a client sends it: this protocol counts the bytes received while a head is
incomplete and answers 431, closing the connection, once they pass ``MAX_HEAD_BYTES``.

uvicorn writes an answer's head and its body with a ``transport.write`` each, and uvloop
sends each at once: two ``write`` calls, two TCP segments, the client woken twice (over
loopback a send does the receiver's TCP work too). :class:`HeldTransport` holds a small
write until the next one, or until the event loop's current step ends, and sends the
two with one ``writev``.

uvicorn queues requests pipelined behind the one it is answering, and drops the queue
with the connection: a request received whole would leave no access record. When the
connection ends, this protocol runs each queued request still, in order, as one whose
client went away (the gate logs it: refused, or failed), and marks the one running as
gone too (uvicorn marks only the last received, and a write of the running one's answer
to the closed transport raised).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

#: Bytes of a request's head (request line and headers) buffered before refusing.
MAX_HEAD_BYTES = 16 * 1024
#: A write at most this long is held for the next one (an answer's head is a few hundred
#: bytes); a longer one goes out at once, so flow control sees it as it is written.
HOLD_BYTES = 4096

_REFUSAL = b"Request head too large"

Data = bytes | bytearray | memoryview


class HeldTransport(asyncio.Transport):
    """A transport that sends a held small write together with the write after it.

    At most one write is held, and only until the event loop's current step ends (a
    callback then sends it), so nothing waits and the bytes keep their order. Closing,
    or anything that ends or measures the write side, sends the held bytes first."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.inner = transport
        self._loop = loop
        self._held: Data | None = None

    def write(self, data: Data) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.inner.writelines((held, data))  # one writev with uvloop
        elif len(data) <= HOLD_BYTES and not self.inner.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self.inner.write(data)

    def flush(self) -> None:
        """Send what is held, if anything."""
        held = self._held
        if held is not None:
            self._held = None
            self.inner.write(held)

    def writelines(self, list_of_data: Iterable[Data]) -> None:
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        self.flush()
        self.inner.close()

    def abort(self) -> None:
        self._held = None
        self.inner.abort()

    def write_eof(self) -> None:
        self.flush()
        self.inner.write_eof()

    def can_write_eof(self) -> bool:
        return self.inner.can_write_eof()

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size() + (len(self._held) if self._held else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.inner.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        self.inner.resume_reading()

    def is_reading(self) -> bool:
        return self.inner.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.inner.get_protocol()


class BoundedHeadProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._running: RequestResponseCycle | None = None
        self._running_task: asyncio.Task[None] | None = None

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        before = set(self.tasks)
        super()._start_asgi_task(cycle, app)
        self._running, self._running_task = cycle, next(iter(self.tasks - before), None)

    def connection_lost(self, exc: Exception | None) -> None:
        queued = list(reversed(self.pipeline))  # appended left, taken from the right
        self.pipeline.clear()
        super().connection_lost(exc)
        for cycle in (self._running, *(c for c, _ in queued)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        if queued:
            task = self.loop.create_task(_run_gone(self._running_task, queued))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeldTransport(transport, self.loop))

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


async def _run_gone(
    running: asyncio.Task[None] | None, queued: list[tuple[RequestResponseCycle, ASGI3Application]]
) -> None:
    """Requests received whole on a connection that ended before their turn, in order,
    after the one running: the app sees each as a request whose client went away (it
    logs it; nothing is sent)."""
    if running is not None:
        await asyncio.wait([running])
    for cycle, app in queued:
        await cycle.run_asgi(app)
