"""The patrol API under hostile input, over real HTTP (uvicorn): repeated headers, purposes
in disguise, malformed requests, oversized bodies, and answers from an erased version.

Header tests speak raw HTTP (``http.client``, a raw socket): client libraries merge
repeated headers, so only a raw request shows what the server does with them."""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.serve import consumers as reg
from hotlist.serve.gate import MAX_BODY_BYTES, header_values
from hotlist.serve.versions import HotlistCache
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import raw_request, running_api, server_process

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


def _records(settings: Settings) -> list[dict[str, object]]:
    return list(audit.records(settings.data_dir))


def _lookup_body(plate: str = "7API001") -> bytes:
    return json.dumps({"plate": plate}).encode()


def _polite(key: str, user: str = "officer1", purpose: str = "patrol") -> list[tuple[str, str]]:
    return [
        ("Authorization", f"Bearer {key}"),
        ("X-User", user),
        ("X-Purpose", purpose),
        ("Content-Type", "application/json"),
    ]


# --- SB 54: repeated headers, purposes in disguise ------------------------------------


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        ("X-Purpose", "patrol", "immigration"),
        ("X-Purpose", "immigration", "patrol"),
        ("X-User", "officer1", "officer2"),
        ("Authorization", "key", "key"),
    ],
)
def test_a_repeated_identity_header_is_refused_with_400_and_logged(
    api: str, key: str, settings: Settings, name: str, first: str, second: str
) -> None:
    def value(v: str) -> str:
        return f"Bearer {key}" if v == "key" else v

    headers = [h for h in _polite(key) if h[0] != name]
    headers += [(name, value(first)), (name, value(second))]
    status, body = raw_request(api, "POST", "/v1/lookup", headers, _lookup_body())
    assert status == 400
    assert f"{name} header is sent 2 times" in json.loads(body)["detail"]
    [record] = _records(settings)
    assert str(record["outcome"]).startswith("refused: the " + name)
    if name == "X-Purpose":  # both purposes on record, not the harmless one alone
        assert record["purpose"] == f"{first} | {second}"


def test_an_identity_header_sent_again_with_an_underscore_counts_as_repeated(
    api: str, key: str, settings: Settings
) -> None:
    """Some proxies and frameworks read ``X_Purpose`` as ``X-Purpose``: which one counts
    must not be theirs to choose."""
    headers = [*_polite(key), ("X_Purpose", "immigration")]
    status, body = raw_request(api, "POST", "/v1/lookup", headers, _lookup_body())
    assert status == 400
    assert "X-Purpose header is sent 2 times" in json.loads(body)["detail"]
    assert str(_records(settings)[0]["outcome"]).startswith("refused")


@pytest.mark.parametrize(
    "purpose",
    [
        "\uff29\uff23\uff25-detainer",  # full-width ICE
        "I.C.E.",
        "\u0131mm\u0131grat\u0131on",  # dotless i
        "Deportation-Support",
        "patrol-ICE",
    ],
)
def test_immigration_purposes_in_disguise_are_refused_in_every_request(
    api: str, key: str, settings: Settings, purpose: str
) -> None:
    status, body = raw_request(api, "POST", "/v1/lookup", _polite(key, purpose=purpose), b"{}")
    assert status == 403
    assert "SB 54" in json.loads(body)["detail"]
    [record] = _records(settings)
    assert record["purpose"] == purpose
    assert str(record["outcome"]).startswith("refused")


def test_an_immigration_purpose_is_refused_even_without_a_key(api: str, settings: Settings) -> None:
    status, body = raw_request(
        api, "GET", "/v1/hotlist", [("X-User", "x"), ("X-Purpose", "immigration")]
    )
    assert (status, "SB 54" in json.loads(body)["detail"]) == (403, True)
    assert str(_records(settings)[0]["outcome"]).startswith("refused")


@pytest.mark.parametrize("purpose", ["PATROL", "\uff50\uff41\uff54\uff52\uff4f\uff4c", " Patrol "])
def test_a_configured_purpose_is_recognized_after_nfkc_and_case_folding(
    api: str, key: str, purpose: str
) -> None:
    status, _ = raw_request(
        api, "POST", "/v1/lookup", _polite(key, purpose=purpose), _lookup_body()
    )
    assert status == 200


# --- SB 34: every request logged, authentication before the body ----------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/hotlist?since=-1", b"", 422),
        ("GET", "/v1/hotlist?format=xml", b"", 422),
        ("POST", "/v1/lookup", _lookup_body("7ABC1234567890123"), 422),
        ("POST", "/v1/lookup", b'{"plate": "7AB', 422),
        ("POST", "/v1/ack", b'{"version": 99}', 409),
        ("GET", "/v1/nowhere", b"", 404),
        ("DELETE", "/v1/lookup", b"", 405),
    ],
)
def test_a_failed_authenticated_request_is_logged_with_who_asked_and_why_it_failed(
    api: str, key: str, settings: Settings, method: str, path: str, body: bytes, status: int
) -> None:
    got, answer = raw_request(api, method, path, _polite(key), body)
    assert got == status
    [record] = _records(settings)
    assert (record["user"], record["organization"], record["purpose"]) == (
        "officer1",
        "CA0190000",
        "patrol",
    )
    assert record["outcome"] == f"failed: {status} {json.loads(answer)['detail']}"
    assert record["time"] and record["data_element"]
    assert "7ABC1234567890123" not in json.dumps(record)  # rejected input stays out


def test_an_ack_of_an_unknown_version_names_the_version_in_the_log(
    api: str, key: str, settings: Settings
) -> None:
    raw_request(api, "POST", "/v1/ack", _polite(key), b'{"version": 99}')
    assert _records(settings)[0]["data_element"] == "ack version 99"


def test_a_malformed_body_without_a_key_is_answered_401_not_422(
    api: str, settings: Settings
) -> None:
    headers = [
        ("X-User", "officer1"),
        ("X-Purpose", "patrol"),
        ("Content-Type", "application/json"),
    ]
    status, _ = raw_request(api, "POST", "/v1/lookup", headers, b'{"plate": ')
    assert status == 401
    [record] = _records(settings)
    assert str(record["outcome"]).startswith("refused: a valid API key is required")


def test_an_overlong_identity_header_is_refused_and_logged_cut_to_its_limit(
    api: str, key: str, settings: Settings
) -> None:
    status, _ = raw_request(api, "POST", "/v1/lookup", _polite(key, user="u" * 5000), b"{}")
    assert status == 400
    [record] = _records(settings)
    assert record["user"] == "u" * 128


# --- Memory before authentication -----------------------------------------------------


def _post_huge_body(port: int, headers: list[tuple[str, str]], declared: int) -> tuple[bytes, int]:
    """Send a request head declaring ``declared`` bytes of body, read the answer the server
    gives before any body byte is sent, then push body until the server stops taking it.
    Returns the answer and how many body bytes the server let through."""
    head = ["POST /v1/lookup HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {declared}"]
    head += [f"{n}: {v}" for n, v in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = sock.recv(65536)
        chunk, sent = b"0" * (1 << 20), 0
        try:
            while sent < declared:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    return answer, sent


@pytest.mark.parametrize("authenticated", [False, True])
def test_a_huge_body_is_refused_before_it_is_read_and_the_server_does_not_grow(
    settings: Settings, tmp_path: Path, authenticated: bool
) -> None:
    """1.2 GB declared: without a key the answer is 401, with one 413, both before a body
    byte arrives; the server closes the connection, so the body is never read and the
    server's memory does not grow by anything near its size."""
    key = reg.add(settings.data_dir, "p", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    declared = 1_200_000_000
    headers = [("X-User", "officer1"), ("X-Purpose", "patrol")]
    if authenticated:
        headers.append(("Authorization", f"Bearer {key}"))
    with server_process(tmp_path / "hotlist.toml", tmp_path) as server:
        before = server.rss_bytes()
        answer, let_through = _post_huge_body(server.port, headers, declared)
        after = server.rss_bytes()
    status = 413 if authenticated else 401
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"connection: close" in answer.lower()
    assert let_through < declared // 10  # what kernel buffers took, not the body
    assert after - before < declared // 10
    [record] = _records(settings)
    assert str(record["outcome"]).startswith("refused")


def test_a_chunked_body_past_the_limit_is_cut_off_with_413_and_logged(
    api: str, key: str, settings: Settings
) -> None:
    port = int(api.rsplit(":", 1)[1])
    head = [
        "POST /v1/lookup HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked",
        *(f"{n}: {v}" for n, v in _polite(key)),
    ]  # fmt: skip
    piece = b"x" * 4096
    body = (b"%x\r\n" % len(piece) + piece + b"\r\n") * (MAX_BODY_BYTES // 4096 + 2)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")
    [record] = _records(settings)
    assert str(record["outcome"]).startswith("failed: 413")


# --- No answer from an erased version -------------------------------------------------


def test_no_lookup_is_answered_from_a_version_the_purge_erased(
    api: str, key: str, settings: Settings, drop: Drop
) -> None:
    """One lookup loads version 1; day 2 removes a plate and a purge verifies. The first
    lookup of that plate afterwards must not return version 1's hit from memory."""
    headers = {"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"}

    def lookup(plate: str) -> dict[str, object]:
        response = httpx.post(f"{api}/v1/lookup", json={"plate": plate}, headers=headers)
        assert response.status_code == 200
        answer: dict[str, object] = response.json()
        return answer

    first = lookup("7API002")
    assert (first["version"], len(first["hits"])) == (1, 1)  # type: ignore[arg-type]
    _publish(settings, drop, [ln for ln in BASE if "7API001" not in ln], 2)
    assert not (settings.data_dir / "published" / "v000000001").exists()
    after = lookup("7API001")
    assert (after["version"], after["hits"]) == (2, [])


def test_a_lookup_waiting_for_the_version_after_an_erased_one_holds_no_other_request(
    api: str, key: str, settings: Settings, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version a lookup held was erased: it waits for the current one to load, on a
    worker thread. The event loop meanwhile answers other requests (the load is the real
    one, held back until they have been answered)."""
    headers = {"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"}
    plate = {"plate": "7API001"}
    assert httpx.post(f"{api}/v1/lookup", json=plate, headers=headers).status_code == 200
    _publish(settings, drop, [ln for ln in BASE if "7API001" not in ln], 2)
    loading, release = threading.Event(), threading.Event()
    real_load = HotlistCache._load

    def held_load(self: HotlistCache, manifest: dict[str, object]) -> object:
        loading.set()
        assert release.wait(30)
        return real_load(self, manifest)

    monkeypatch.setattr(HotlistCache, "_load", held_load)
    answers: list[httpx.Response] = []
    looking = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{api}/v1/lookup", json=plate, headers=headers, timeout=30)
        )
    )
    looking.start()
    try:
        assert loading.wait(10)
        policy = httpx.get(f"{api}/privacy-policy", timeout=5)  # answered while it loads
        assert policy.status_code == 200
    finally:
        release.set()
        looking.join(timeout=30)
    [answer] = answers
    assert (answer.json()["version"], answer.json()["hits"]) == (2, [])


def test_no_replica_answers_from_a_version_the_purge_erased(
    settings: Settings, drop: Drop, key: str
) -> None:
    """Two servers over one data_dir (replicas), each holding version 1 in memory: after
    day 2 and a purge run by neither of them, both answer from version 2."""
    _publish(settings, drop, BASE, 1)
    headers = {"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"}
    with running_api(settings) as one, running_api(settings) as two:
        for url in (one, two):
            response = httpx.post(f"{url}/v1/lookup", json={"plate": "7API002"}, headers=headers)
            assert response.json()["version"] == 1
        _publish(settings, drop, [ln for ln in BASE if "7API001" not in ln], 2)
        for url in (one, two):
            response = httpx.post(f"{url}/v1/lookup", json={"plate": "7API001"}, headers=headers)
            assert (response.json()["version"], response.json()["hits"]) == (2, [])


def test_the_purge_reports_only_once_every_server_has_looked_again(
    settings: Settings, drop: Drop, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lookups trust their last look at CURRENT.json for RECHECK_S (here made a second):
    the purge does not return, nor mark anything purged, before a server holding the
    erased version in memory has looked again, so the first lookup after it answers
    from the new version."""
    import time

    from hotlist.serve import versions

    monkeypatch.setattr(versions, "RECHECK_S", 1.0)
    _publish(settings, drop, BASE, 1)
    headers = {"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"}
    with running_api(settings) as url:
        response = httpx.post(f"{url}/v1/lookup", json={"plate": "7API002"}, headers=headers)
        assert response.json()["version"] == 1
        looked = time.monotonic()
        _publish(settings, drop, [ln for ln in BASE if "7API001" not in ln], 2)
        assert time.monotonic() - looked >= 1.0  # the purge waited for the look
        response = httpx.post(f"{url}/v1/lookup", json={"plate": "7API001"}, headers=headers)
        assert (response.json()["version"], response.json()["hits"]) == (2, [])


# --- Header reading, as properties ----------------------------------------------------

_IDENTITY = st.sampled_from(["Authorization", "X-User", "X-Purpose"])


def _spelled(name: str, draw: st.DrawFn) -> str:
    """The header name in any case, hyphens possibly sent as underscores."""
    cased = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
    return cased.replace("-", "_") if draw(st.booleans()) else cased


@st.composite
def _repeating(draw: st.DrawFn) -> tuple[str, list[tuple[bytes, bytes]]]:
    name = draw(_IDENTITY)
    others = draw(st.lists(st.sampled_from(["Accept", "Host", "X-Other"]), max_size=4))
    headers = [(h, "v") for h in others]
    headers += [(_spelled(name, draw), draw(st.text(max_size=20))) for _ in range(2)]
    order = draw(st.permutations(headers))
    return name, [(n.lower().encode(), v.encode()) for n, v in order]


@given(_repeating())
def test_an_identity_header_sent_twice_in_any_spelling_is_seen_as_repeated(
    case: tuple[str, list[tuple[bytes, bytes]]],
) -> None:
    name, headers = case
    assert len(header_values({"headers": headers})[name.lower().encode()]) == 2


@given(st.text())
def test_a_header_value_sent_as_utf8_is_read_as_the_text_sent(value: str) -> None:
    assert header_values({"headers": [(b"x-purpose", value.encode())]})[b"x-purpose"] == [value]


@pytest.mark.parametrize("shape", ["many headers", "one endless value"])
def test_a_request_head_past_its_bound_is_refused_and_the_connection_closed(
    api: str, key: str, settings: Settings, shape: str
) -> None:
    """httptools buffers a head for as long as it comes; the server stops it at
    ``MAX_HEAD_BYTES`` with 431 and closes, before the app (or the log) sees a request."""
    host, port = api.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/lookup HTTP/1.1\r\nHost: x\r\n")
        if shape == "one endless value":
            sock.sendall(b"X-Note: ")
        sent, answer = 0, b""
        piece = b"a" * 1000 if shape == "one endless value" else b"X-Pad: " + b"a" * 991 + b"\r\n"
        try:
            while sent < 4 * 1024 * 1024 and not answer:
                sock.sendall(piece)
                sent += len(piece)
                # Paced, so the server has read all that came before it answers and closes
                # (closing with unread bytes would reset the connection, answer and all).
                if select.select([sock], [], [], 0.02)[0]:
                    answer = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert b"connection: close" in answer.lower()
    assert sent < 4 * 1024 * 1024  # the server closed: the client could not go on
    assert _records(settings) == []
