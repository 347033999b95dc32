"""``POST /v1/lookup/batch`` over real HTTP (uvicorn): results in the reads' order, each
read its own SB 34 access record in an intact chain, the 1,000-read limit, a body limit
larger than a single lookup's but bounded and checked only after authentication, and
SB 54 refusing a batch whole. Also the exact-match index every lookup uses."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.lookup import BadQuery, plate_query
from hotlist.purge import purge
from hotlist.serve import consumers as reg
from hotlist.serve.deps import Problem
from hotlist.serve.gate import MAX_BATCH_BODY_BYTES, MAX_BATCH_READS, MAX_BODY_BYTES
from hotlist.serve.lookups import encode
from hotlist.serve.lookups import read_query as query
from hotlist.serve.matching import PlateIndex, _padded_blob, widest
from hotlist.serve.versions import in_plate_order
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import running_api

# 7API000..7API019 in CA; 7API001 is also listed in NV (two hits without a state).
BASE = [ncic_line(f"V{i:09d}", f"7API{i:03d}") for i in range(20)]
BASE.append(ncic_line("V000000901", "7API001", "NV", ori="NV0190000"))


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings("guards = {max_removal_share = 0.5}")


@pytest.fixture
def api(settings: Settings, drop: Drop) -> Iterator[str]:
    drop.put("VEHEXTRT.txt", ncic_file(BASE, stamp="202611210800"))
    ingest_source(settings, "ncic")
    assert purge(settings, None).verification.ok
    with running_api(settings) as url:
        yield url


@pytest.fixture
def key(settings: Settings) -> str:
    return reg.add(settings.data_dir, "patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)


def _headers(key: str | None, purpose: str = "patrol") -> dict[str, str]:
    headers = {"X-User": "officer1", "X-Purpose": purpose}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _batch(url: str, headers: dict[str, str], reads: list[dict[str, object]]) -> httpx.Response:
    return httpx.post(f"{url}/v1/lookup/batch", json={"reads": reads}, headers=headers, timeout=60)


def _api_records(settings: Settings) -> list[dict[str, object]]:
    return [r for r in audit.records(settings.data_dir) if r["channel"] == "api"]


READS: list[dict[str, object]] = [
    {"plate": "ZZZ999"},  # a miss first
    {"plate": "7API005"},
    {"plate": "7api-001"},  # normalized as the lists are: 7API001, in CA and NV
    {"plate": "7API001", "state": "NV"},
    {"plate": "7API00"},  # a prefix of listed plates is not one of them
    {"plate": "7API019", "state": "OR"},  # listed, but not in that state
    {"plate": "7API005"},  # the same plate twice is two reads
]


def test_results_come_in_the_reads_order_with_hits_and_misses(api: str, key: str) -> None:
    response = _batch(api, _headers(key), READS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] >= 1
    results = body["results"]
    assert [(r["plate"], r["state"]) for r in results] == [
        (r["plate"], r.get("state")) for r in READS
    ]
    found = [sorted((h["plate"], h["state"]) for h in r["hits"]) for r in results]
    assert found == [
        [],
        [("7API005", "CA")],
        [("7API001", "CA"), ("7API001", "NV")],
        [("7API001", "NV")],
        [],
        [],
        [("7API005", "CA")],
    ]
    assert {h["match"] for r in results for h in r["hits"]} == {"exact"}
    assert results[1]["hits"][0]["record_id"] == "V000000005"


def test_a_batch_answers_as_single_lookups_do(api: str, key: str) -> None:
    """The same hits, field for field, as ``POST /v1/lookup`` gives for each read."""
    batch = _batch(api, _headers(key), READS).json()["results"]
    for read, result in zip(READS, batch, strict=True):
        single = httpx.post(f"{api}/v1/lookup", json=read, headers=_headers(key), timeout=30)
        assert single.status_code == 200
        assert single.json()["hits"] == result["hits"]


def test_each_read_is_its_own_access_record_in_an_intact_chain(
    api: str, key: str, settings: Settings
) -> None:
    assert _batch(api, _headers(key), READS).status_code == 200
    records = _api_records(settings)
    assert [r["data_element"] for r in records] == [
        "plate ZZZ999",
        "plate 7API005",
        "plate 7api-001",
        "plate 7API001 state NV",
        "plate 7API00",
        "plate 7API019 state OR",
        "plate 7API005",
    ]
    assert [r["outcome"] for r in records] == [
        "granted: 0 hits", "granted: 1 hits", "granted: 2 hits", "granted: 1 hits",
        "granted: 0 hits", "granted: 0 hits", "granted: 1 hits",
    ]  # fmt: skip
    assert {(r["user"], r["organization"], r["purpose"], r["client"]) for r in records} == {
        ("officer1", "CA0190000", "patrol", "127.0.0.1")
    }
    seqs = [int(str(r["seq"])) for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + len(READS)))
    assert audit.verify_chain(settings.data_dir).ok


def test_a_batch_of_the_most_reads_is_taken_though_its_body_passes_a_lookups_limit(
    api: str, key: str, settings: Settings
) -> None:
    reads: list[dict[str, object]] = [
        {"plate": f"7API{i % 40:03d}", "state": "CA"} for i in range(MAX_BATCH_READS)
    ]
    assert len(json.dumps({"reads": reads})) > MAX_BODY_BYTES
    response = _batch(api, _headers(key), reads)
    assert response.status_code == 200, response.text
    hits = [len(r["hits"]) for r in response.json()["results"]]
    assert hits == [1 if i % 40 < 20 else 0 for i in range(MAX_BATCH_READS)]
    assert len(_api_records(settings)) == MAX_BATCH_READS
    assert audit.verify_chain(settings.data_dir).ok


def test_one_read_past_the_limit_is_refused_whole_and_logged(
    api: str, key: str, settings: Settings
) -> None:
    reads: list[dict[str, object]] = [{"plate": "7API001"}] * (MAX_BATCH_READS + 1)
    response = _batch(api, _headers(key), reads)
    assert response.status_code == 422
    assert "reads" in response.json()["detail"]
    assert f"at most {MAX_BATCH_READS} items" in response.json()["detail"]
    [record] = _api_records(settings)
    assert record["data_element"] == "POST /v1/lookup/batch"
    assert str(record["outcome"]).startswith("failed: 422")
    assert record["organization"] == "CA0190000"


def test_an_empty_batch_is_refused(api: str, key: str, settings: Settings) -> None:
    assert _batch(api, _headers(key), []).status_code == 422
    [record] = _api_records(settings)
    assert str(record["outcome"]).startswith("failed: 422")


@pytest.mark.parametrize("purpose", ["immigration enforcement", "ICE detainer"])
def test_a_batch_with_an_immigration_purpose_is_refused_whole(
    api: str, key: str, settings: Settings, purpose: str
) -> None:
    response = _batch(api, _headers(key, purpose=purpose), READS)
    assert response.status_code == 403
    assert "results" not in response.json()
    [record] = _api_records(settings)
    assert record["data_element"] == "POST /v1/lookup/batch"
    assert str(record["outcome"]).startswith("refused")


def _declare(port: int, headers: dict[str, str], declared: int) -> bytes:
    """A batch request head declaring ``declared`` body bytes; the answer given before any."""
    head = ["POST /v1/lookup/batch HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {declared}"]
    head += [f"{n}: {v}" for n, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        return sock.recv(65536)


@pytest.mark.parametrize(
    ("authenticated", "declared", "status"),
    [
        (True, MAX_BATCH_BODY_BYTES + 1, 413),
        (False, MAX_BATCH_BODY_BYTES + 1, 401),
        (False, MAX_BODY_BYTES + 1, 401),  # the larger limit only after authentication
    ],
)
def test_a_batch_body_is_bounded_before_it_is_read(
    api: str, key: str, settings: Settings, authenticated: bool, declared: int, status: int
) -> None:
    port = int(api.rsplit(":", 1)[1])
    answer = _declare(port, _headers(key if authenticated else None), declared)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"connection: close" in answer.lower()  # the body is never read
    [record] = _api_records(settings)
    assert str(record["outcome"]).startswith("refused")


# --- the exact-match index ------------------------------------------------------------

_PLATES = st.text(alphabet="AB01", min_size=1, max_size=5)


@hsettings(max_examples=200, deadline=None)
@given(listed=st.lists(_PLATES, max_size=120), asked=_PLATES)
def test_the_index_finds_exactly_the_rows_a_filter_finds(listed: list[str], asked: str) -> None:
    """Prefixes, repeats and plates of every length, across several strides of the
    sampled list (repeats astride a stride's edge too): the packed, padded bisection
    agrees with a plain filter of the sorted frame."""
    frame = pl.DataFrame(
        {"plate": listed, "state": ["CA"] * len(listed)},
        schema={"plate": pl.String, "state": pl.String},
    ).sort("plate", "state")
    expected = [i for i, p in enumerate(frame["plate"].to_list()) if p == asked]
    assert list(PlateIndex(frame).rows(asked)) == expected


@hsettings(max_examples=200, deadline=None)
@given(
    plates=st.lists(st.none() | st.text(alphabet="AB0Ä", max_size=4), max_size=40),
    start=st.integers(0, 5),
)
def test_the_packed_plates_are_each_plate_padded_to_the_widest(
    plates: list[str | None], start: int
) -> None:
    """The blob built from the column's string data equals the plates padded one by one
    (a slice of a column, nulls, and text outside ASCII, which takes the loop)."""
    column = pl.Series("plate", plates, dtype=pl.String).slice(start).fill_null("")
    width = max(widest(column), 1)
    one_by_one = b"".join(p.encode().ljust(width, b"\0") for p in column.to_list())
    assert _padded_blob(column, width) == one_by_one


@hsettings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.none() | _PLATES, st.none() | st.sampled_from(["CA", "NV"])), max_size=60
    ),
    presort=st.booleans(),
)
def test_a_version_is_searched_in_plate_then_state_order_sorted_or_not(
    rows: list[tuple[str | None, str | None]], presort: bool
) -> None:
    """What the server loads is in plate, then state order, with the same rows, whether
    the file came in that order (the publish writes it so: no sort) or not."""
    frame = pl.DataFrame(
        {"plate": [r[0] for r in rows], "state": [r[1] for r in rows], "n": range(len(rows))},
        schema={"plate": pl.String, "state": pl.String, "n": pl.Int64},
    )
    if presort:
        frame = frame.sort("plate", "state")
    loaded = in_plate_order(frame)
    keys = ["plate", "state"]
    assert loaded.select(keys).equals(frame.sort(keys).select(keys))
    assert sorted(loaded["n"].to_list()) == list(range(len(rows)))
    if presort:
        assert loaded is frame


@pytest.mark.parametrize("path", ["/v1/lookup", "/v1/lookup/batch"])
def test_a_client_gone_before_its_body_was_whole_is_still_logged(
    api: str, key: str, settings: Settings, path: str
) -> None:
    """Admitted, then the body never completes: no answer can go out, but the request
    still gets its one record."""
    port = int(api.rsplit(":", 1)[1])
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 1000"]
    head += [f"{n}: {v}" for n, v in _headers(key).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"reads": [')
    deadline = time.monotonic() + 20
    while not _api_records(settings) and time.monotonic() < deadline:
        time.sleep(0.05)
    [record] = _api_records(settings)
    assert record["data_element"] == f"POST {path}"
    assert record["outcome"] == "failed: the client went away before its body was whole"


# --- the answer's encoding -------------------------------------------------------------


def test_an_answer_is_encoded_as_plain_json_and_a_new_freshness_anew() -> None:
    """A lookup's freshness is encoded once per freshness object (one a second at most):
    the bytes are those of a plain encoding, and a later freshness is never answered
    with the earlier one's ages."""

    def plain(answer: dict[str, object]) -> bytes:
        return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()

    earlier = {
        "ncic": {"applied_at": "2026-12-02T09:00:00+00:00", "age_hours": 1.25, "stale": False}
    }
    later = {"ncic": {"applied_at": "2026-12-02T09:00:00+00:00", "age_hours": 13.5, "stale": True}}
    answer = {"version": 3, "hits": [{"description": 'Ω "quoted"'}], "candidates": []}
    for freshness in (earlier, earlier, later):
        full = {**answer, "freshness": freshness}
        assert encode(full) == plain(full)
    batch = {"version": 3, "results": [{"plate": "7ABC123", "state": None, "hits": []}]}
    assert encode(batch) == plain(batch)
    miss = {"version": 4, "hits": [], "candidates": [], "freshness": later}
    assert encode(miss) == plain(miss)


@given(plate=st.text(alphabet="7aAzZ09 -.Oo\u00e9\uff21\uff17\u0130", min_size=1, max_size=16))
def test_a_plate_is_read_as_hotlist_lookup_reads_it_whatever_its_form(plate: str) -> None:
    """Plates already as the lists hold them are taken as they are, without NFKC: the same
    plate, or the same refusal, as ``plate_query`` gives for every form."""
    try:
        expected: tuple[str, str | None] | str = (plate_query(plate), None)
    except BadQuery as exc:
        expected = f"body.plate: {exc}"
    try:
        got: tuple[str, str | None] | str = query(plate, None, "body")
    except Problem as exc:
        got = exc.detail
    assert got == expected
