"""The API reads a plate as ``hotlist lookup`` does: full-width characters (an input
method's) match their ASCII plate, and a state that is no state or province code, or a
plate with no letters or digits, is refused with 422 naming the field, never its value."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.serve import consumers as reg
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import running_api


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def api(settings: Settings, drop: Drop) -> Iterator[tuple[str, str]]:
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7ABC123")], stamp="202611210800"))
    ingest_source(settings, "ncic")
    assert purge(settings, None).verification.ok
    key = reg.add(settings.data_dir, "patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    with running_api(settings) as url:
        yield url, key


#: 7ABC123 and CA as an input method types them (full-width forms).
FULL_WIDTH_PLATE = "".join(chr(ord(c) + 0xFEE0) for c in "7ABC123")
FULL_WIDTH_STATE = "".join(chr(ord(c) + 0xFEE0) for c in "CA")


def _post(api: tuple[str, str], path: str, body: object) -> httpx.Response:
    url, key = api
    headers = {"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"}
    return httpx.post(url + path, json=body, headers=headers, timeout=30)


def test_a_full_width_plate_finds_its_ascii_hit(api: tuple[str, str]) -> None:
    answer = _post(api, "/v1/lookup", {"plate": FULL_WIDTH_PLATE, "state": FULL_WIDTH_STATE})
    assert answer.status_code == 200, answer.text
    assert [h["plate"] for h in answer.json()["hits"]] == ["7ABC123"]
    batch = _post(api, "/v1/lookup/batch", {"reads": [{"plate": FULL_WIDTH_PLATE}]})
    assert [h["plate"] for h in batch.json()["results"][0]["hits"]] == ["7ABC123"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plate": "7ABC123", "state": "ZZ"}, "body.state"),
        ({"plate": "---"}, "body.plate"),
    ],
)
def test_a_read_no_list_could_hold_is_refused_naming_the_field(
    api: tuple[str, str], settings: Settings, body: dict[str, str], field: str
) -> None:
    answer = _post(api, "/v1/lookup", body)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith(f"{field}:")
    assert "ZZ" not in detail and "---" not in detail
    [record] = [r for r in audit.records(settings.data_dir) if r["channel"] == "api"]
    assert record["outcome"].startswith("failed: 422")


def test_one_bad_read_refuses_the_batch_and_names_the_read(
    api: tuple[str, str], settings: Settings
) -> None:
    reads = [{"plate": "7ABC123"}, {"plate": "7ABC123", "state": "CA"}, {"plate": "***"}]
    answer = _post(api, "/v1/lookup/batch", {"reads": reads})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("body.reads.2.plate:")
    records = [r for r in audit.records(settings.data_dir) if r["channel"] == "api"]
    assert [r["outcome"][:11] for r in records] == ["failed: 422"]
