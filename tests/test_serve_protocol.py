"""An answer's head and body leave in one write: a small write is held for the next one,
never past the end of the event loop's step, and the bytes keep their order."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Awaitable, Callable

import uvloop

from hotlist.serve.protocol import HOLD_BYTES, HeldTransport

Check = Callable[[HeldTransport, socket.socket], Awaitable[None]]


def _run(check: Check) -> None:
    """``check`` on a real uvloop transport over one end of a socket pair, the other
    end given to read what was sent."""

    async def main() -> None:
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        theirs.setblocking(False)
        try:
            await check(HeldTransport(transport, loop), theirs)
        finally:
            transport.close()
            theirs.close()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def _sent(peer: socket.socket) -> bytes:
    """What has reached the peer so far (nothing waits for more)."""
    got = b""
    while select.select([peer], [], [], 0)[0]:
        piece = peer.recv(1 << 20)
        if not piece:
            break
        got += piece
    return got


def test_a_head_is_held_and_leaves_with_its_body_in_order() -> None:
    async def check(held: HeldTransport, peer: socket.socket) -> None:
        held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
        assert _sent(peer) == b""  # held, not sent alone
        held.write(b"body")
        assert _sent(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"

    _run(check)


def test_a_lone_small_write_leaves_when_the_loop_step_ends() -> None:
    async def check(held: HeldTransport, peer: socket.socket) -> None:
        held.write(b"100 Continue")
        await asyncio.sleep(0)
        assert _sent(peer) == b"100 Continue"
        assert held.get_write_buffer_size() == 0

    _run(check)


def test_a_large_write_is_never_held() -> None:
    async def check(held: HeldTransport, peer: socket.socket) -> None:
        large = b"x" * (HOLD_BYTES + 1)
        held.write(large)
        assert _sent(peer) == large

    _run(check)


def test_closing_sends_what_is_held_first() -> None:
    async def check(held: HeldTransport, peer: socket.socket) -> None:
        held.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
        held.close()
        await asyncio.sleep(0.05)
        assert _sent(peer) == b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n"
        assert peer.recv(1) == b""  # then the end of the stream

    _run(check)
