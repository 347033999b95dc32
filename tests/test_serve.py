"""The patrol API over real HTTP: access control (SB 34, SB 54), the access log, deltas,
acks in the deletion reports, ETags, and version switches under load."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pytest

from hotlist import audit
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.reports import deletion_rows
from hotlist.serve import consumers as reg
from hotlist.serve.client import PullError, pull
from hotlist.serve.copies import COPY_FILES
from hotlist.serve.versions import HotlistCache
from hotlist.store import control_path
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import local_copy, running_api

BASE = [ncic_line(f"V{i:09d}", f"7API{i:03d}") for i in range(100)]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    policy = tmp_path / "policy.txt"
    policy.write_text("ALPR usage and privacy policy of the demo agency.\n")
    configured = make_settings("guards = {max_removal_share = 0.5}")
    return configured.model_copy(
        update={"access": configured.access.model_copy(update={"privacy_policy": policy})}
    )


def _stamp(n: int) -> str:
    return f"2026112{n}0800"


def _publish(settings: Settings, drop: Drop, lines: list[str], n: int) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(lines, stamp=_stamp(n)))
    ingest_source(settings, "ncic")
    purge(settings, None)


@pytest.fixture
def api(settings: Settings, drop: Drop) -> Iterator[str]:
    _publish(settings, drop, BASE, 1)
    with running_api(settings) as url:
        yield url


@pytest.fixture
def key(settings: Settings) -> str:
    return reg.add(settings.data_dir, "patrol-1", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)


def _headers(key: str | None, user: str = "officer1", purpose: str = "patrol") -> dict[str, str]:
    headers = {"X-User": user, "X-Purpose": purpose}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _lookup(
    url: str, headers: dict[str, str], plate: str = "7API001", **extra: object
) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/lookup", json={"plate": plate, **extra}, headers=headers, timeout=30
    )


def test_a_lookup_finds_the_hit_and_is_logged_with_the_four_sb34_fields(
    api: str, key: str, settings: Settings
) -> None:
    response = _lookup(api, _headers(key), "7api-001")
    assert response.status_code == 200
    [hit] = response.json()["hits"]
    assert (hit["record_id"], hit["match"]) == ("V000000001", "exact")
    assert response.json()["freshness"]["ncic"]["stale"] is False
    [record] = list(audit.records(settings.data_dir))
    assert record["user"] == "officer1"
    assert record["organization"] == "CA0190000"
    assert record["purpose"] == "patrol"
    assert record["data_element"] == "plate 7api-001"
    assert record["outcome"] == "granted: 1 hits"
    assert record["client"] == "127.0.0.1"
    assert record["time"]


@pytest.mark.parametrize(
    ("auth", "status"),
    [(None, 401), ("hl_not-a-key", 401), ("revoked", 401)],
)
def test_requests_without_a_valid_key_are_refused_and_logged(
    api: str, key: str, settings: Settings, auth: str | None, status: int
) -> None:
    if auth == "revoked":
        reg.revoke(settings.data_dir, "patrol-1")
        auth = key
    response = _lookup(api, _headers(auth))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    [record] = list(audit.records(settings.data_dir))
    assert record["outcome"].startswith("refused")


@pytest.mark.parametrize("kind", list(reg.AgencyKind))
def test_only_california_public_agencies_receive_data(
    api: str, settings: Settings, kind: reg.AgencyKind
) -> None:
    ori = "CA0190001" if kind.may_receive else "NV0020000"
    agency_key = reg.add(settings.data_dir, f"c-{kind.value}", ori, "Agency", kind)
    response = _lookup(api, _headers(agency_key))
    full = httpx.get(f"{api}/v1/hotlist", headers=_headers(agency_key), timeout=30)
    if kind in (reg.AgencyKind.CA_LOCAL, reg.AgencyKind.CA_STATE):
        assert response.status_code == full.status_code == 200
    else:
        assert response.status_code == full.status_code == 403
        assert "SB 34" in response.json()["detail"]
        assert all(r["outcome"].startswith("refused") for r in audit.records(settings.data_dir))


@pytest.mark.parametrize("ori", ["NV0190000", "CA019000", "", "ca0190000x"])
def test_a_california_agency_is_registered_only_with_a_california_ori(
    settings: Settings, ori: str
) -> None:
    with pytest.raises(reg.ConsumerError, match="9 characters starting CA"):
        reg.add(settings.data_dir, "patrol-x", ori, "PD", reg.AgencyKind.CA_LOCAL)
    assert reg.all_consumers(settings.data_dir) == []


@pytest.mark.parametrize(
    ("purpose", "status", "why"),
    [
        ("immigration-enforcement", 403, "SB 54"),
        ("Immigration", 403, "SB 54"),
        ("curiosity", 403, "purposes"),
    ],
)
def test_purposes_outside_the_policy_and_immigration_are_refused(
    api: str, key: str, settings: Settings, purpose: str, status: int, why: str
) -> None:
    response = _lookup(api, _headers(key, purpose=purpose))
    assert response.status_code == status
    assert why in response.json()["detail"]
    [record] = list(audit.records(settings.data_dir))
    assert (record["purpose"], record["outcome"][:7]) == (purpose, "refused")


def test_a_request_must_name_the_user(api: str, key: str) -> None:
    assert _lookup(api, _headers(key, user="")).status_code == 400


def test_fuzzy_lookup_marks_ocr_candidates_apart_from_exact_hits(api: str, key: str) -> None:
    response = _lookup(api, _headers(key), "7AP1001", fuzzy=True)  # I read as 1
    body = response.json()
    assert body["hits"] == []
    assert [(c["plate"], c["match"]) for c in body["candidates"]] == [("7API001", "ocr-candidate")]


def test_the_privacy_policy_is_public(api: str) -> None:
    response = httpx.get(f"{api}/privacy-policy", timeout=30)
    assert response.status_code == 200
    assert "privacy policy" in response.text


def test_etag_answers_not_modified(api: str, key: str) -> None:
    first = httpx.get(
        f"{api}/v1/hotlist", params={"format": "parquet"}, headers=_headers(key), timeout=30
    )
    again = httpx.get(
        f"{api}/v1/hotlist",
        params={"format": "parquet"},
        headers={**_headers(key), "If-None-Match": first.headers["ETag"]},
        timeout=30,
    )
    assert again.status_code == 304


def _server_copy(url: str, key: str) -> pl.DataFrame:
    full = httpx.get(
        f"{url}/v1/hotlist", params={"format": "json"}, headers=_headers(key), timeout=30
    ).json()
    return pl.DataFrame(full["entries"]).select("entry_id", "plate").sort("entry_id")


@pytest.mark.parametrize("copy_format", ["lines", "parquet"])
def test_deltas_keep_a_client_copy_equal_to_the_server_over_several_versions(
    api: str, key: str, settings: Settings, drop: Drop, tmp_path: Path, copy_format: str
) -> None:
    out = tmp_path / "patrol-copy"
    first = pull(api, key, "car12", "patrol", out, copy_format=copy_format)
    assert (first.full, first.entries) == (True, 100)
    lines = list(BASE)
    for n in range(2, 5):
        lines = [ln for ln in lines if f"7API{n:03d}" not in ln] + [
            ncic_line(f"P{n:09d}", f"8NEW{n:03d}")
        ]
        lines = [ln.replace("BLK", "RED") if f"7API{10 + n:03d}" in ln else ln for ln in lines]
        _publish(settings, drop, lines, n)
        result = pull(api, key, "car12", "patrol", out, copy_format=copy_format)
        assert not result.full
        assert (result.upserts, result.removals) == (2, 1)
        local = local_copy(out).select("entry_id", "plate").sort("entry_id")
        assert local.equals(_server_copy(api, key))
    assert sorted(p.name for p in out.iterdir()) == sorted([COPY_FILES[copy_format], "state.json"])
    local = local_copy(out)
    assert "7API002" not in local["plate"].to_list()
    assert local.filter(pl.col("plate") == "7API013")["colour"].to_list() == ["RED"]


def test_a_client_too_far_behind_gets_a_full_version(
    api: str, key: str, settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    pull(api, key, "car12", "patrol", out)
    _publish(settings, drop, BASE[1:], 2)
    for change_file in (settings.data_dir / "published" / "changes").glob("*.parquet"):
        change_file.unlink()  # as if the change files no longer reached back to this client
    result = pull(api, key, "car12", "patrol", out)
    assert result.full
    assert result.entries == 99


def test_removals_stay_outstanding_per_consumer_until_acknowledged(
    api: str, key: str, settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    late = reg.add(settings.data_dir, "patrol-2", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    pull(api, key, "car12", "patrol", tmp_path / "a")
    pull(api, late, "car7", "patrol", tmp_path / "b")
    _publish(settings, drop, BASE[1:], 2)
    pull(api, key, "car12", "patrol", tmp_path / "a")

    def copies() -> tuple[list[str], list[str]]:
        con = duckdb.connect(str(control_path(settings.data_dir)), read_only=True)
        try:
            rows = deletion_rows(
                con,
                consumers=reg.all_consumers(settings.data_dir),
                acks=reg.ack_history(settings.data_dir),
            )
        finally:
            con.close()
        return rows["outstanding_copies"].to_list(), rows["copies_purged"].to_list()

    outstanding, purged = copies()
    assert outstanding == ["patrol-2"]
    assert purged[0].startswith("patrol-1 ")  # with the time its copy dropped the record
    assert "patrol-2" not in purged[0]
    pull(api, late, "car7", "patrol", tmp_path / "b")
    outstanding, purged = copies()
    assert outstanding == [""]
    assert "patrol-1 " in purged[0]
    assert "patrol-2 " in purged[0]


def test_a_refused_pull_says_why(api: str, settings: Settings, tmp_path: Path) -> None:
    fed = reg.add(settings.data_dir, "fed", "DC0000000", "A federal agency", reg.AgencyKind.FEDERAL)
    with pytest.raises(PullError, match="SB 34"):
        pull(api, fed, "agent", "patrol", tmp_path / "x")


def test_readers_see_whole_versions_while_new_ones_are_published(
    api: str, key: str, settings: Settings, drop: Drop
) -> None:
    errors: list[str] = []
    versions: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=api, timeout=30) as http:
            while not stop.is_set():
                response = http.post("/v1/lookup", json={"plate": "7API050"}, headers=_headers(key))
                if response.status_code != 200 or len(response.json()["hits"]) != 1:
                    errors.append(f"{response.status_code} {response.text[:100]}")
                else:
                    versions.add(response.json()["version"])

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        lines = list(BASE)
        for n in range(2, 6):
            lines = [*lines, ncic_line(f"A{n:09d}", f"9AMB{n:03d}")]
            _publish(settings, drop, lines, n)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert errors == []
    assert len(versions) >= 2


def test_the_openapi_schema_documents_every_route_with_examples(api: str) -> None:
    schema = httpx.get(f"{api}/openapi.json", timeout=30).json()
    assert {"/v1/hotlist", "/v1/lookup", "/v1/ack", "/privacy-policy"} <= set(schema["paths"])
    assert "7ABC123" in json.dumps(schema["components"]["schemas"]["LookupRequest"])


def test_a_property_based_fuzz_run_against_the_openapi_schema_finds_no_server_error(
    api: str, key: str, tmp_path: Path
) -> None:
    """schemathesis generates requests from the schema (valid and invalid), over real HTTP."""
    import subprocess
    import sys

    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api}/openapi.json",
        "--checks", "not_a_server_error", "--max-examples", "40", "--generation-deterministic",
        "-H", f"Authorization: Bearer {key}", "-H", "X-User: fuzzer", "-H", "X-Purpose: patrol",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    import re

    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts is not None, done.stdout[-2000:]
    assert int(counts[1]) == int(counts[2]) >= 100


def test_status_shows_each_consumers_version_and_lag(
    api: str, key: str, settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from hotlist.cli import app

    pull(api, key, "car12", "patrol", tmp_path / "copy")
    _publish(settings, drop, BASE[2:], 2)
    config = str(settings.data_dir.parent / "hotlist.toml")
    shown = CliRunner().invoke(app, ["status", "-c", config]).stdout
    row = next(line for line in shown.splitlines() if "patrol-1" in line)
    assert "│ 1 " in row  # one version behind


def test_a_key_revoked_while_the_server_runs_is_refused_within_a_second(
    api: str, key: str, settings: Settings
) -> None:
    assert _lookup(api, _headers(key)).status_code == 200
    reg.revoke(settings.data_dir, "patrol-1")
    revoked = time.monotonic()
    while (status := _lookup(api, _headers(key)).status_code) == 200:
        assert time.monotonic() - revoked < 1.0, "a revoked key was still served after 1 s"
    assert status == 401
    assert _lookup(api, _headers(key)).status_code == 401  # and stays refused


def test_a_revocation_the_registry_files_stamp_does_not_show_is_refused_within_a_second(
    api: str, key: str, settings: Settings
) -> None:
    """A file's modification time is as coarse as the kernel's clock tick on many kernels:
    a revocation written in the tick of the key cache's last look leaves the registry's
    modification time and size as they were. It is refused within the second all the same."""
    assert _lookup(api, _headers(key)).status_code == 200
    path = reg.registry_path(settings.data_dir)
    before = os.stat(path)
    reg.revoke(settings.data_dir, "patrol-1")
    after = os.stat(path)
    assert after.st_size == before.st_size  # a row changed in place
    assert not Path(f"{path}-wal").exists()  # folded into the file when the write closed
    os.utime(path, ns=(after.st_atime_ns, before.st_mtime_ns))  # the same clock tick
    revoked = time.monotonic()
    while (status := _lookup(api, _headers(key)).status_code) == 200:
        assert time.monotonic() - revoked < 1.0, "a revoked key was still served after 1 s"
    assert status == 401


def test_a_key_added_while_the_server_runs_is_served_at_once(
    api: str, key: str, settings: Settings
) -> None:
    """The key cache looks at the registry at most every RECHECK_S, but a key it does not
    know sends it to look again: a consumer registered a moment ago is not refused."""
    assert _lookup(api, _headers(key)).status_code == 200
    second = reg.add(settings.data_dir, "patrol-2", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    assert _lookup(api, _headers(second)).status_code == 200


def _strace_requests(
    settings: Settings,
    tmp_path: Path,
    key: str,
    syscalls: str,
    send: Callable[[httpx.Client], None],
) -> list[str]:
    """The lines strace (``-e trace=SYSCALLS``) records from a real ``hotlist serve``
    while ``send`` makes its requests, after a first lookup has warmed the server."""
    import shutil
    import time

    from tests.serving import server_process

    if shutil.which("strace") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("strace is required under CI")
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace"
    with server_process(tmp_path / "hotlist.toml", tmp_path) as server:
        url = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/v1/lookup", json={"plate": "7API001"}, headers=_headers(key))
            attach_log = tmp_path / "strace.err"
            with open(attach_log, "wb") as err:
                tracer = subprocess.Popen(
                    ["strace", "-f", "-p", str(server.pid), "-o", str(trace),
                     "-e", f"trace={syscalls}"],
                    stderr=err,
                )  # fmt: skip
            deadline = time.monotonic() + 30
            while "attached" not in attach_log.read_text():
                if tracer.poll() is not None or time.monotonic() > deadline:
                    tracer.kill()
                    message = attach_log.read_text()
                    if os.environ.get("CI") != "true" and "not permitted" in message:
                        pytest.skip(f"ptrace is not permitted here: {message}")
                    pytest.fail(f"strace did not attach: {message}")
                time.sleep(0.1)
            send(http)
            tracer.terminate()
            tracer.wait(timeout=30)
    return trace.read_text().splitlines()


def _ten_lookups(http: httpx.Client, key: str) -> None:
    for _ in range(10):
        response = http.post("/v1/lookup", json={"plate": "7API001"}, headers=_headers(key))
        assert response.status_code == 200


def test_a_lookup_in_steady_state_reads_no_file_and_stats_at_most_every_recheck(
    settings: Settings, drop: Drop, key: str, tmp_path: Path
) -> None:
    """The per-request cost: the registry and CURRENT.json are checked with stat(2)
    alone, and by lookups at most once per RECHECK_S each (not once per lookup); nothing
    the server answers from is opened or read (strace on a real ``hotlist serve``)."""
    import time

    from hotlist.serve.consumers import RECHECK_S as KEYS_RECHECK_S
    from hotlist.serve.versions import RECHECK_S

    _publish(settings, drop, BASE, 1)
    took: list[float] = []

    def send(http: httpx.Client) -> None:
        started = time.monotonic()
        for _ in range(5):
            _ten_lookups(http, key)
        took.append(time.monotonic() - started)

    lines = _strace_requests(
        settings, tmp_path, key, "open,openat,read,pread64,newfstatat,stat,statx", send
    )
    data_dir = str(settings.data_dir)
    # What the server itself reads to answer; the access log's appends are hotlist.audit's.
    audit_dir = str(settings.data_dir / "audit")
    touched = [line for line in lines if data_dir in line and audit_dir not in line]
    assert [line for line in touched if "open" in line.split("(")[0]] == []
    looks = sum("CURRENT.json" in line for line in touched)
    assert looks <= took[0] / RECHECK_S + 2
    registry = sum('consumers.sqlite"' in line for line in touched)
    assert registry <= took[0] / KEYS_RECHECK_S + 2


def test_lookups_and_batches_open_make_or_chmod_nothing_and_a_batch_is_one_write(
    settings: Settings, drop: Drop, key: str, tmp_path: Path
) -> None:
    """In steady state, under the whole data_dir (the access log included: its segment
    and its append lock stay open): no open, mkdir or chmod per request. A batch of 1,000
    reads reaches the access log as one write of its 1,000 records."""
    _publish(settings, drop, BASE, 1)

    def send(http: httpx.Client) -> None:
        _ten_lookups(http, key)
        reads = [{"plate": f"7API{i % 100:03d}"} for i in range(1000)]
        response = http.post("/v1/lookup/batch", json={"reads": reads}, headers=_headers(key))
        assert response.status_code == 200

    lines = _strace_requests(
        settings, tmp_path, key, "open,openat,mkdir,mkdirat,chmod,fchmodat,write", send
    )
    data_dir = str(settings.data_dir)
    assert [line for line in lines if data_dir in line and "write(" not in line] == []
    # Records are canonical JSON (sorted keys): each write of records starts with one.
    appends = [line for line in lines if "write(" in line and '{\\"channel\\":' in line]
    assert len(appends) == 11  # ten lookups, then the batch
    records = [r for r in audit.records(settings.data_dir) if r["channel"] == "api"]
    assert len(records) == 1 + 10 + 1000
    assert audit.verify_chain(settings.data_dir).ok


def _open_append_locks(data_dir: Path) -> int:
    """Descriptors of this process (the API runs on its thread) open on the append lock."""
    found = 0
    lock = str(data_dir.resolve() / "audit" / ".append.lock")
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found += os.readlink(fd) == lock
        except OSError:
            continue
    return found


def test_the_server_keeps_one_append_lock_open_across_requests_and_closes_it_at_exit(
    settings: Settings, drop: Drop, key: str
) -> None:
    """The lock file is opened once, not per request (each request still takes the lock),
    and the server's shutdown closes it."""
    _publish(settings, drop, BASE, 1)
    with running_api(settings) as api:
        for _ in range(5):
            assert _lookup(api, _headers(key)).status_code == 200
        assert _open_append_locks(settings.data_dir) == 1
    assert _open_append_locks(settings.data_dir) == 0


def test_appends_from_another_process_during_lookups_keep_one_chain(
    api: str, key: str, settings: Settings
) -> None:
    """The server's lock descriptor stays open between requests and still excludes a CLI
    writer: records of both interleave in one unbroken chain."""
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, pathlib; from hotlist import audit\n"
         "for i in range(150):\n"
         "    audit.append(pathlib.Path(sys.argv[1]), audit.AccessRecord("
         "'cli', 'CA0190000', 'patrol', f'plate CLI{i}', 'granted: 0 hits', 'cli'), sync=False)",
         str(settings.data_dir)],
    )  # fmt: skip
    with httpx.Client(timeout=30) as client:
        for i in range(150):
            client.post(f"{api}/v1/lookup", json={"plate": f"API{i}"}, headers=_headers(key))
    assert writer.wait(timeout=120) == 0
    records = list(audit.records(settings.data_dir))
    assert sum(r["channel"] == "cli" for r in records) == 150
    assert sum(r["channel"] == "api" for r in records) == 150
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert audit.verify_chain(settings.data_dir).ok


def test_a_delta_pull_is_answered_while_its_version_loads(
    api: str,
    key: str,
    settings: Settings,
    drop: Drop,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delta needs the entries it upserts, not the lookup indexes of the version: the
    pulls waiting for a new version are answered from its files while the server loads
    it (held back here until the answer has come), with the delta the loaded version
    gives."""
    out = tmp_path / "patrol-copy"
    pull(api, key, "car12", "patrol", out)  # version 1, loaded by the server
    removed = local_copy(out).filter(pl.col("plate") == "7API002")
    lines = [ln for ln in BASE if "7API002" not in ln] + [ncic_line("P000000002", "8NEW002")]
    _publish(settings, drop, lines, 2)
    loading, release = threading.Event(), threading.Event()
    real_load = HotlistCache._load

    def held_load(self: HotlistCache, manifest: dict[str, object]) -> object:
        loading.set()
        assert release.wait(30)
        return real_load(self, manifest)

    monkeypatch.setattr(HotlistCache, "_load", held_load)
    try:
        params: dict[str, str | int] = {"since": 1, "format": "parquet"}
        answer = httpx.get(f"{api}/v1/hotlist", params=params, headers=_headers(key), timeout=10)
        assert loading.wait(10)  # the load runs beside the answer, not before it
    finally:
        release.set()
    assert answer.status_code == 200
    assert (answer.headers["X-Hotlist-Version"], answer.headers["X-Hotlist-Full"]) == ("2", "false")
    delta = pl.read_parquet(io.BytesIO(answer.content))
    assert delta.filter(pl.col("op") == "upsert")["plate"].to_list() == ["8NEW002"]
    assert (
        delta.filter(pl.col("op") == "remove")["entry_id"].to_list()
        == removed["entry_id"].to_list()
    )
    result = pull(api, key, "car12", "patrol", out)  # the loaded version agrees
    assert (result.version, result.full, result.upserts, result.removals) == (2, False, 1, 1)
    local = local_copy(out).select("entry_id", "plate").sort("entry_id")
    assert local.equals(_server_copy(api, key))
