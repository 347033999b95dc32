"""A torn tail in the access log never costs an API request its answer or its log record
(real uvicorn on loopback)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.serve import consumers as reg
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import running_api


def test_an_api_lookup_after_a_torn_tail_is_answered_and_logged(
    make_settings: Callable[..., Settings], drop: Drop
) -> None:
    settings = make_settings()
    drop.put("VEHEXTRT.txt", ncic_file([ncic_line("V000000001", "7API001")]))
    ingest_source(settings, "ncic")
    from hotlist.publish import publish  # the served version
    from hotlist.store import control as ctl
    from hotlist.store.state import build_state

    con = ctl.connect(settings.data_dir)
    try:
        publish(con, settings.data_dir, settings.published_dir, build_state(con, settings.data_dir))
    finally:
        con.close()
    key = reg.add(settings.data_dir, "patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    headers = {"Authorization": f"Bearer {key}", "X-User": "officer1", "X-Purpose": "patrol"}
    with running_api(settings) as url:
        first = httpx.post(f"{url}/v1/lookup", json={"plate": "7API001"}, headers=headers)
        assert first.status_code == 200
        with open(audit.log_path(settings.data_dir), "ab") as fh:  # another process crashed
            fh.write(b'{"channel":"cli","client":"","data_element":"plate 7AP')
        second = httpx.post(f"{url}/v1/lookup", json={"plate": "7API001"}, headers=headers)
        assert second.status_code == 200
    logged = [r for r in audit.records(settings.data_dir) if r["channel"] == "api"]
    assert len(logged) == 2
    check = audit.verify_chain(settings.data_dir)
    assert check.ok, check.problems
    assert any("torn tail kept as evidence" in n for n in check.notices)
