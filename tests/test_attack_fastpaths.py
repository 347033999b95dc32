"""Attack pass on the lookups' fast paths (the gate, the direct lane, the key and version
caches, the plate index, the held writes), over a real uvicorn server and real sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.serve import consumers as reg
from hotlist.serve.versions import HotlistCache
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import running_api

BASE = [ncic_line(f"V{i:09d}", f"7API{i:03d}") for i in range(20)]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings("guards = {max_removal_share = 0.5}")


def _publish(settings: Settings, drop: Drop, lines: list[str], day: int) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(lines, stamp=f"2026112{day}0800"))
    ingest_source(settings, "ncic")
    assert purge(settings, None).verification.ok


@pytest.fixture
def api(settings: Settings, drop: Drop) -> Iterator[str]:
    _publish(settings, drop, BASE, 1)
    with running_api(settings) as url:
        yield url


@pytest.fixture
def key(settings: Settings) -> str:
    return reg.add(settings.data_dir, "patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)


def _port(api: str) -> int:
    return int(api.rsplit(":", 1)[1])


def _records(settings: Settings) -> list[dict[str, object]]:
    return [r for r in audit.records(settings.data_dir) if r["channel"] == "api"]


def _head(method: str, path: str, headers: list[tuple[str, str]], version: str = "1.1") -> bytes:
    lines = [
        f"{method} {path} HTTP/{version}",
        "Host: 127.0.0.1",
        *(f"{n}: {v}" for n, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _identity(key: str, purpose: str = "patrol") -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {key}"), ("X-User", "officer1"), ("X-Purpose", purpose)]


def _read_response(sock: socket.socket) -> bytes:
    """One answer: its head, and as many body bytes as its Content-Length says."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(65536)
        if not chunk:
            return got
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
         if line.startswith(b"content-length:")),
        0,
    )  # fmt: skip
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


# --- every request logged: no way around the gate -------------------------------------


@pytest.mark.parametrize("path", ["/v1/lookup", "/v1/hotlist", "/v1/nowhere"])
def test_a_websocket_handshake_is_answered_as_http_and_logged_once(
    api: str, key: str, settings: Settings, path: str
) -> None:
    """uvicorn upgrades a WebSocket handshake by itself when a WebSocket library is
    installed (one is, as a dependency of a dependency): the request then reaches the
    app as a ``websocket`` scope, which the gate passes on unlogged, and FastAPI answers
    403 for the missing route. A handshake is a request like any other: it gets one
    access record, and an immigration purpose is refused as such (SB 54)."""
    head = _head(
        "GET",
        path,
        [
            *_identity(key, "immigration"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    with socket.create_connection(("127.0.0.1", _port(api)), timeout=10) as sock:
        sock.sendall(head)
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:80]
    assert b"SB 54" in answer
    [record] = _records(settings)
    assert (record["data_element"], record["purpose"]) == (f"GET {path}", "immigration")
    assert str(record["outcome"]).startswith("refused: immigration enforcement")


# --- a revoked key is refused within a second ------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "element"),
    [
        ("/v1/lookup", {"plate": "7API001"}, "plate 7API001"),
        (
            "/v1/lookup/batch",
            {"reads": [{"plate": "7API001"}, {"plate": "7API002"}]},
            "batch of 2 reads",
        ),
    ],
)
def test_a_key_revoked_while_the_body_trickles_in_gets_no_answer(
    api: str, key: str, settings: Settings, path: str, body: dict[str, object], element: str
) -> None:
    """The gate admits a request on its headers; its body may then come as slowly as the
    client likes (uvicorn has no deadline for it). A key revoked meanwhile must not be
    answered more than a second later: the request is refused, with one access record
    (one, not one per read), and no hit goes out."""
    raw = json.dumps(body).encode()
    headers = [*_identity(key), ("Content-Type", "application/json")]
    head = _head("POST", path, [*headers, ("Content-Length", str(len(raw)))])
    with socket.create_connection(("127.0.0.1", _port(api)), timeout=30) as sock:
        sock.sendall(head + raw[:5])
        time.sleep(0.3)  # admitted by now, waiting for the rest of its body
        reg.revoke(settings.data_dir, "patrol-1")
        time.sleep(1.2)
        sock.sendall(raw[5:])
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]
    assert b"7API00" not in answer
    [record] = _records(settings)
    assert record["data_element"] == element
    assert str(record["outcome"]).startswith("failed: 401 this API key was revoked")


@pytest.mark.parametrize("change", ["revoke", "rotate"])
def test_an_ack_whose_key_was_revoked_or_replaced_while_it_waited_records_nothing(
    api: str, key: str, settings: Settings, change: str
) -> None:
    """An ack is the evidence the deletion report counts a copy purged by. A key revoked
    (a lost patrol laptop) or replaced after the gate admitted its ack, while the body
    trickled in, cannot vouch for a copy: the ack is refused and nothing is recorded."""
    raw = json.dumps({"version": 1}).encode()
    headers = [*_identity(key), ("Content-Type", "application/json")]
    head = _head("POST", "/v1/ack", [*headers, ("Content-Length", str(len(raw)))])
    with socket.create_connection(("127.0.0.1", _port(api)), timeout=30) as sock:
        sock.sendall(head + raw[:3])
        time.sleep(0.3)  # admitted by now, waiting for the rest of its body
        getattr(reg, change)(settings.data_dir, "patrol-1")
        sock.sendall(raw[3:])
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]
    [consumer] = reg.all_consumers(settings.data_dir)
    assert consumer.acked_version is None
    assert reg.ack_history(settings.data_dir) == {}
    [record] = _records(settings)
    assert record["data_element"] == "ack version 1"
    assert str(record["outcome"]).startswith("failed: 401 this API key was revoked or replaced")


# --- every request logged: pipelined requests when the connection ends -----------------


def _lookup(key: str, purpose: str = "patrol", plate: str = "7API001") -> bytes:
    raw = json.dumps({"plate": plate}).encode()
    headers = [*_identity(key, purpose), ("Content-Length", str(len(raw)))]
    return _head("POST", "/v1/lookup", headers) + raw


def _records_settled(settings: Settings, count: int) -> list[dict[str, object]]:
    """The API's records once ``count`` are there, or after 10 s (and then a moment more,
    so that one too many shows)."""
    deadline = time.monotonic() + 10
    while len(_records(settings)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return _records(settings)


def test_pipelined_requests_are_each_logged_when_the_client_goes_away(
    api: str, key: str, settings: Settings
) -> None:
    """Three lookups pipelined on one connection, the second for immigration
    enforcement, then the client shuts its side: uvicorn had received all three whole,
    but ran only the first and dropped the queued two with the connection, so they left
    no trace. Each is logged once, in order; the second as refused (SB 54)."""
    with socket.create_connection(("127.0.0.1", _port(api)), timeout=10) as sock:
        sock.sendall(_lookup(key) + _lookup(key, "immigration") + _lookup(key, plate="7API002"))
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        while sock.recv(65536):
            pass
    records = _records_settled(settings, 3)
    assert [(r["purpose"], str(r["outcome"]).split(":")[0]) for r in records] == [
        ("patrol", str(records[0]["outcome"]).split(":")[0]),  # answered, or gone first
        ("immigration", "refused"),
        ("patrol", "failed"),
    ]
    assert "SB 54" in str(records[1]["outcome"])
    assert str(records[2]["outcome"]).startswith("failed: the client went away")


def test_a_request_pipelined_behind_a_refusal_that_ends_the_connection_is_logged(
    api: str, key: str, settings: Settings
) -> None:
    """A refused request with a chunked body is answered with ``Connection: close`` (its
    body is never read); a request pipelined behind it was received, and is logged too,
    not dropped with the connection."""
    refused = _head(
        "POST",
        "/v1/lookup",
        [("X-User", "officer1"), ("X-Purpose", "patrol"), ("Transfer-Encoding", "chunked")],
    )
    with socket.create_connection(("127.0.0.1", _port(api)), timeout=10) as sock:
        sock.sendall(refused + b"5\r\nhello\r\n0\r\n\r\n" + _lookup(key, "immigration"))
        answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 401 ")
        assert b"connection: close" in answer.lower()
        sock.settimeout(10)
        while sock.recv(65536):  # the server ends the connection
            pass
    records = _records_settled(settings, 2)
    assert [(r["purpose"], str(r["outcome"]).split(":")[0]) for r in records] == [
        ("patrol", "refused"),
        ("immigration", "refused"),
    ]


def test_a_key_revoked_while_its_pull_waits_for_a_version_to_load_gets_no_data(
    api: str, key: str, settings: Settings, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full pull of a newly published version waits for the server to load it (1.5 s
    for 2M entries): a key revoked meanwhile gets a 401, not the version, and the pull is
    logged once, refused. The load is the real one, held back until the key is revoked.
    (A delta pull does not wait for the load: test_serve's
    test_a_delta_pull_is_answered_while_its_version_loads.)"""
    headers = {"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"}
    assert httpx.get(f"{api}/v1/hotlist", headers=headers, timeout=30).status_code == 200
    _publish(settings, drop, BASE[1:], 2)  # version 2: not loaded yet
    loading, revoked = threading.Event(), threading.Event()
    real_load = HotlistCache._load

    def load_after_the_revocation(self: HotlistCache, manifest: dict[str, object]) -> object:
        loading.set()
        assert revoked.wait(30)
        return real_load(self, manifest)

    monkeypatch.setattr(HotlistCache, "_load", load_after_the_revocation)
    answer: list[httpx.Response] = []
    pulling = threading.Thread(
        target=lambda: answer.append(httpx.get(f"{api}/v1/hotlist", headers=headers, timeout=30))
    )
    before = len(_records(settings))
    pulling.start()
    assert loading.wait(30)
    reg.revoke(settings.data_dir, "patrol-1")
    time.sleep(2 * reg.RECHECK_S)  # the key cache's bound: the revocation is visible
    revoked.set()
    pulling.join(timeout=30)
    [response] = answer
    assert response.status_code == 401
    assert "entries" not in response.text and "7API" not in response.text
    [record] = _records(settings)[before:]
    assert str(record["outcome"]).startswith("failed: 401")
