"""The patrol API with the access log in PostgreSQL, attacked through what a request may
carry: a NUL character (``%00`` in the path, ``\\u0000`` in a plate), which PostgreSQL's
text refuses. Every such request is still answered as it would be with the file log, and
logged (real server process, real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from hotlist import audit
from hotlist.config import Settings
from hotlist.serve import consumers as reg
from hotlist.serve.registry import registry_for
from tests.builders import Drop
from tests.serving import running_api
from tests.test_pg_audit_api import _headers, _published


def test_a_nul_in_the_path_or_a_plate_is_answered_and_logged(
    make_settings: Callable[..., Settings], drop: Drop, pg_url: str
) -> None:
    settings = _published(make_settings, drop, pg_url)
    with registry_for(settings) as registry:
        key = registry.add("patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    with running_api(settings) as url:
        probe = httpx.get(f"{url}/v1/hotlist%00x")
        lookup = httpx.post(
            f"{url}/v1/lookup", json={"plate": "7API\u0000001"}, headers=_headers(key)
        )
        batch = httpx.post(
            f"{url}/v1/lookup/batch",
            json={"reads": [{"plate": "7API\u0000001"}, {"plate": "7API001"}]},
            headers=_headers(key),
        )
    assert probe.status_code == 401, probe.text
    assert lookup.status_code not in (500, 503), lookup.text
    assert batch.status_code not in (500, 503), batch.text
    elements = [r["data_element"] for r in audit.records(settings)]
    assert len(elements) >= 4, elements
    assert elements[0] == "GET /v1/hotlist\ufffdx"  # U+FFFD in its place
    assert not any("\x00" in e for e in elements)
    check = audit.verify_chain(settings)
    assert check.ok, check.problems
