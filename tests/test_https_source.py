"""The HTTPS source (CLEW's web site) against a real TLS server on loopback.

The site is ``hotlist.sources.https_server`` in a thread, with a CA and certificates
generated at test time; a real CONNECT proxy tunnels where a test puts one in between.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotlist.config import ConfigError, SourceConfig, load_settings
from hotlist.ingest import ingest_source
from hotlist.lookup import find_hits
from hotlist.sources import FetchError, FetchFailure, LandedFile, Taken, Unchanged
from hotlist.sources.fetch import fetch
from hotlist.sources.https_page import refuse_web_page
from hotlist.sources.https_server import issue, make_ca, serve_directory, spki_pin
from hotlist.sources.https_validators import strong_validators
from hotlist.store.apply import ApplyResult
from tests.builders import Drop, clew_file, clew_line
from tests.https_support import Site, running_proxy, running_site

MakeSource = Callable[..., SourceConfig]


@pytest.fixture
def site(drop: Drop, tmp_path: Path) -> Iterator[Site]:
    with running_site(drop.root, tmp_path / "pki") as running:
        yield running


@pytest.fixture
def make_source(site: Site) -> MakeSource:
    def make(**overrides: Any) -> SourceConfig:
        fields: dict[str, Any] = {
            "url": site.url,
            "layout": "clew-svs",
            "files": {"svs": "svs.tbl"},
            "ca_file": site.ca.cert,
            "read_timeout_s": 10,
        }
        return SourceConfig(**(fields | overrides))

    return make


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "landing" / "svs"
    path.mkdir(parents=True)
    return path


def _fetch(source: SourceConfig, tmp_path: Path, last: Taken | None = None) -> Any:
    return fetch("svs", source, list(source.files), tmp_path / "data", lambda feed: last)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _landing_names(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "data" / "landing" / "svs").iterdir())


def _write_stamped_after_now(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    later = time.time() + 3600
    os.utime(path, (later, later))


def _big(size: int = 1 << 20) -> bytes:
    line = clew_line("7ABC123") + "\n"
    return (line * (size // len(line) + 1)).encode()[:size]


# -- the ingest, day 1 and day 2 -------------------------------------------------------------


def test_day_1_and_day_2_arrive_over_https_and_day_2_removals_apply(
    site: Site, drop: Drop, tmp_path: Path
) -> None:
    """Three CLEW tables fetched from the site (CA file and key pin), applied, then replaced."""
    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.svs]\nurl = "{site.url}clew/"\n'
        f'ca_file = "{site.ca.cert}"\ntls_pin = "{spki_pin(site.cert.cert)}"\n'
        'files = {svs = "svs.tbl", sfr = "/clew/sfr.tbl", slr = "slr.tbl"}\n'
        "guards = {max_removal_share = 0.6}\n"
    )
    settings = load_settings(config, environ={})
    (drop.root / "clew").mkdir()
    for name, plate in (("svs.tbl", "7SVS001"), ("sfr.tbl", "7SFR001"), ("slr.tbl", "7SLR001")):
        drop.put(f"clew/{name}", clew_file([clew_line(plate), clew_line("4GONE00")]))

    day1 = ingest_source(settings, "svs")

    assert [o.verdict for o in day1 if isinstance(o, ApplyResult)] == ["applied"] * 3
    assert find_hits(settings.data_dir, "4GONE00")
    day2_table = [clew_line("7SVS001"), clew_line("8NEW000")]
    drop.put("clew/svs.tbl", clew_file(day2_table, header="DATE11/23/2026 08:00"))

    day2 = ingest_source(settings, "svs")

    assert [o.verdict for o in day2 if isinstance(o, ApplyResult)] == ["applied"]
    assert [h.plate for h in find_hits(settings.data_dir, "8NEW000")] == ["8NEW000"]
    assert {h.feed for h in find_hits(settings.data_dir, "4GONE00")} == {"sfr", "slr"}
    assert list((settings.data_dir / "landing").rglob("*")) == [
        settings.data_dir / "landing" / "svs"
    ]
    validators = settings.data_dir / "http-validators" / "svs.json"
    assert stat.S_IMODE(validators.stat().st_mode) == 0o600
    assert b"GONE" not in validators.read_bytes()  # hashes and validators, no records


# -- change detection ------------------------------------------------------------------------


def test_a_304_to_the_remembered_validators_is_unchanged_without_a_download(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    drop.put("svs.tbl", _big())
    [first] = _fetch(make_source(), tmp_path)
    assert isinstance(first, LandedFile)
    first.path.unlink()

    second = _fetch(make_source(), tmp_path, Taken("svs.tbl", first.sha256))

    assert second == [Unchanged("svs", "svs.tbl")]
    headers = site.faults.requests[-1][2]
    assert headers.get("If-None-Match") and headers.get("If-Modified-Since")
    assert _landing_names(tmp_path) == []


def test_validators_of_a_file_that_is_not_the_last_taken_are_not_sent(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """A download that was rejected later must not be skipped as "not modified" next time."""
    drop.put("svs.tbl", _big())
    [first] = _fetch(make_source(), tmp_path)
    first.path.unlink()

    [again] = _fetch(make_source(), tmp_path, Taken("svs.tbl", "0" * 64))

    assert isinstance(again, LandedFile) and again.sha256 == first.sha256
    assert "If-None-Match" not in site.faults.requests[-1][2]


def test_a_body_changed_under_the_same_validators_is_caught_by_its_hash(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """Same size, same mtime (so the same ETag and Last-Modified), other bytes: it lands."""
    path = drop.put("svs.tbl", clew_file([clew_line("7ABC123")]))
    [first] = _fetch(make_source(), tmp_path)
    first.path.unlink()
    before = path.stat()
    path.write_bytes(clew_file([clew_line("7ABC124")]).encode())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    site.faults.ignore_conditionals = True  # the site answers 200 whatever it is asked

    [second] = _fetch(make_source(), tmp_path, Taken("svs.tbl", first.sha256))

    assert isinstance(second, LandedFile)
    assert second.sha256 == _sha256(path.read_bytes()) != first.sha256


def test_the_same_body_again_with_200_is_unchanged_by_its_hash(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    drop.put("svs.tbl", _big())
    [first] = _fetch(make_source(), tmp_path)
    first.path.unlink()
    site.faults.ignore_conditionals = True

    assert _fetch(make_source(), tmp_path, Taken("svs.tbl", first.sha256)) == [
        Unchanged("svs", "svs.tbl")
    ]
    assert _landing_names(tmp_path) == []


def test_a_last_modified_in_the_second_it_was_served_is_not_trusted(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """A file stamped less than a second before it was served could be rewritten within
    that second under the same validators (the site's clock runs behind its files' here)."""
    _write_stamped_after_now(drop.root / "svs.tbl", _big())
    [first] = _fetch(make_source(), tmp_path)
    first.path.unlink()

    [again] = _fetch(make_source(), tmp_path, Taken("svs.tbl", first.sha256))

    assert again == Unchanged("svs", "svs.tbl")  # by its hash, after a full download
    headers = site.faults.requests[-1][2]
    assert "If-None-Match" not in headers and "If-Modified-Since" not in headers


@pytest.mark.parametrize(
    ("date", "trusted"),
    [
        ("Sun, 09 Sep 2001 01:46:40 GMT", False),  # the second it was modified in
        ("Sun, 09 Sep 2001 01:46:41 GMT", True),
        (None, False),
    ],
)
def test_last_modified_is_a_validator_only_a_second_before_the_date(
    date: str | None, trusted: bool
) -> None:
    headers = {"ETag": '"5-a"', "Last-Modified": "Sun, 09 Sep 2001 01:46:40 GMT"}
    response = httpx.Response(200, headers=headers | ({"Date": date} if date else {}))

    kept = strong_validators(response)

    assert (kept.etag, kept.last_modified) == (
        ('"5-a"', headers["Last-Modified"]) if trusted else (None, None)
    )


def test_a_weak_etag_is_never_a_validator() -> None:
    kept = strong_validators(httpx.Response(200, headers={"ETag": 'W/"5-a"'}))

    assert kept.etag is None


# -- TLS -------------------------------------------------------------------------------------


def test_a_certificate_from_another_ca_is_refused_at_once(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    drop.put("svs.tbl", _big())
    other = make_ca(tmp_path / "other", "some other CA")

    with pytest.raises(FetchError) as caught:
        _fetch(make_source(ca_file=other.cert), tmp_path)

    assert caught.value.kind is FetchFailure.TLS_REFUSED and not caught.value.transient
    text = str(caught.value)
    assert "did not verify" in text and str(other.cert) in text and "out of band" in text
    assert f"it presented {spki_pin(site.cert.cert)}" in text and "issuer CN=test site CA" in text
    assert site.get_paths() == []
    assert _landing_names(tmp_path) == []


def test_without_ca_file_a_private_ca_is_refused_by_the_system_store(
    drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    drop.put("svs.tbl", _big())

    with pytest.raises(FetchError) as caught:
        _fetch(make_source(ca_file=None), tmp_path)

    assert caught.value.kind is FetchFailure.TLS_REFUSED
    assert "the system's trusted CAs" in str(caught.value)


def test_a_pinned_key_that_changed_is_refused_naming_both_keys(drop: Drop, tmp_path: Path) -> None:
    """Same CA, new key: the chain verifies, the pin does not; nothing is fetched or kept."""
    drop.put("svs.tbl", _big())
    pki = tmp_path / "pki"
    ca = make_ca(pki, "site CA")
    old = issue(ca, pki, "old")
    with running_site(drop.root, pki, ca=ca) as site:
        source = SourceConfig(
            url=site.url, layout="clew-svs", files={"svs": "svs.tbl"},
            ca_file=ca.cert, tls_pin=spki_pin(old.cert),
        )  # fmt: skip

        with pytest.raises(FetchError) as caught:
            _fetch(source, tmp_path)

    assert caught.value.kind is FetchFailure.TLS_PIN_MISMATCH and not caught.value.transient
    text = str(caught.value)
    assert spki_pin(site.cert.cert) in text and spki_pin(old.cert) in text
    assert "changed" in text and "out of band" in text and "tls_pin" in text
    assert _landing_names(tmp_path) == []


def test_a_second_pin_lets_a_planned_key_change_through(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    drop.put("svs.tbl", _big())
    old = issue(site.ca, tmp_path / "pki", "retired")
    source = make_source(tls_pin=[spki_pin(old.cert), spki_pin(site.cert.cert)])

    [landed] = _fetch(source, tmp_path)

    assert isinstance(landed, LandedFile)


def test_a_site_that_demands_a_client_certificate_gets_the_configured_one(
    drop: Drop, tmp_path: Path
) -> None:
    drop.put("svs.tbl", _big())
    pki = tmp_path / "pki"
    agency = make_ca(pki, "agency CA")
    client = issue(agency, pki, "agency-client", client=True)
    with running_site(drop.root, pki, client_ca=agency.cert) as site:
        base: dict[str, Any] = {
            "url": site.url, "layout": "clew-svs", "files": {"svs": "svs.tbl"},
            "ca_file": site.ca.cert,
        }  # fmt: skip
        with pytest.raises(FetchError) as caught:
            _fetch(SourceConfig(**base), tmp_path)
        assert caught.value.kind in {FetchFailure.TLS_REFUSED, FetchFailure.CONNECTION_DROPPED}

        [landed] = _fetch(
            SourceConfig(
                **base,
                auth="client-certificate",
                client_cert=client.cert,
                client_key=client.key,
            ),
            tmp_path,
        )

    assert isinstance(landed, LandedFile)


# -- landing ---------------------------------------------------------------------------------


def test_a_connection_cut_mid_body_is_resumed_with_range(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    data = _big(3 << 20)
    drop.put("svs.tbl", data)
    site.faults.cut_after["/svs.tbl"] = 1 << 20

    [landed] = _fetch(make_source(), tmp_path)

    assert isinstance(landed, LandedFile)
    assert landed.path.read_bytes() == data and landed.sha256 == _sha256(data)
    assert stat.S_IMODE(landed.path.stat().st_mode) == 0o600
    resumed = site.faults.requests[-1][2]
    assert resumed["Range"] == f"bytes={1 << 20}-" and resumed["If-Range"].startswith('"')
    assert _landing_names(tmp_path) == ["svs.tbl"]


def test_without_a_strong_validator_a_cut_download_starts_over(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """No If-Range to hold the site to the same version: the bytes so far are dropped."""
    data = _big(2 << 20)
    _write_stamped_after_now(drop.root / "svs.tbl", data)  # no validator to trust
    site.faults.cut_after["/svs.tbl"] = 1 << 19

    [landed] = _fetch(make_source(), tmp_path)

    assert isinstance(landed, LandedFile) and landed.path.read_bytes() == data
    assert "Range" not in site.faults.requests[-1][2]


def test_a_connection_cut_every_time_is_transient_and_leaves_nothing(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hotlist.sources.https.RETRY_PAUSE_S", 0.0)
    drop.put("svs.tbl", _big(2 << 20))

    class EveryTime(dict[str, int]):
        def pop(self, key: str, default: Any = None) -> int:
            return 1000

    site.faults.cut_after = EveryTime()

    with pytest.raises(FetchError) as caught:
        _fetch(make_source(), tmp_path)

    assert caught.value.kind is FetchFailure.CONNECTION_DROPPED and caught.value.transient
    assert _landing_names(tmp_path) == []


def test_a_part_file_that_cannot_be_written_is_the_disk_s_failure_not_a_drop(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """The file size limit (EFBIG, as a full disk's ENOSPC) is raised as it is, never
    retried as a connection that dropped; nothing is left."""
    import errno
    import resource
    import signal

    drop.put("svs.tbl", _big(3 << 20))
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, limits[1]))
    try:
        with pytest.raises(OSError, match="File too large") as caught:
            _fetch(make_source(), tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)

    assert caught.value.errno == errno.EFBIG
    assert site.get_paths() == ["/svs.tbl"]
    assert _landing_names(tmp_path) == []


@pytest.mark.parametrize(
    ("content_type", "page", "said"),
    [
        (
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><html><head><title>CLEW Sign In</title></head></html>",
            "Content-Type text/html",
        ),
        (
            "application/octet-stream",
            b"\xef\xbb\xbf\n  <HTML><head><title>Session expired</title>",
            "a body beginning '<html'",
        ),
    ],
)
def test_a_web_page_served_with_200_is_refused_as_not_a_table(
    site: Site,
    drop: Drop,
    make_source: MakeSource,
    tmp_path: Path,
    content_type: str,
    page: bytes,
    said: str,
) -> None:
    drop.put("svs.tbl", _big())
    site.faults.pages["/svs.tbl"] = (content_type, page)

    with pytest.raises(FetchError) as caught:
        _fetch(make_source(), tmp_path)

    assert caught.value.kind is FetchFailure.NOT_A_TABLE and not caught.value.transient
    assert said in str(caught.value) and "titled" in str(caught.value)
    assert _landing_names(tmp_path) == []


@pytest.mark.parametrize(
    ("status", "kind", "transient"),
    [
        (503, FetchFailure.SERVER_ERROR, True),
        (500, FetchFailure.SERVER_ERROR, True),
        (429, FetchFailure.SERVER_ERROR, True),
        (401, FetchFailure.AUTH_REFUSED, False),
        (403, FetchFailure.PERMISSION_DENIED, False),
        (404, FetchFailure.NOT_FOUND, False),
        (302, FetchFailure.HTTP_REFUSED, False),
    ],
)
def test_statuses_are_classified_retry_or_fail_at_once(
    site: Site,
    drop: Drop,
    make_source: MakeSource,
    tmp_path: Path,
    status: int,
    kind: FetchFailure,
    transient: bool,
) -> None:
    drop.put("svs.tbl", _big())
    site.faults.status["/svs.tbl"] = status

    with pytest.raises(FetchError) as caught:
        _fetch(make_source(), tmp_path)

    assert (caught.value.kind, caught.value.transient) == (kind, transient)
    assert str(status) in str(caught.value)


def test_a_site_that_cannot_be_reached_is_transient(
    make_source: MakeSource, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(FetchError) as caught:
        _fetch(make_source(url=f"https://127.0.0.1:{port}/"), tmp_path)

    assert caught.value.transient


# -- credentials and proxy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "value", "header"),
    [
        ("basic", "agency7:s3cret pass", "Basic YWdlbmN5NzpzM2NyZXQgcGFzcw=="),
        ("bearer", "tok-123", "Bearer tok-123"),
    ],
)
def test_credentials_come_from_the_named_environment_variable(
    site: Site,
    drop: Drop,
    make_source: MakeSource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    auth: str,
    value: str,
    header: str,
) -> None:
    drop.put("svs.tbl", _big())
    site.faults.authorization = header
    source = make_source(auth=auth, credentials_env="CLEW_CREDENTIAL")
    monkeypatch.setenv("CLEW_CREDENTIAL", "wrong:wrong" if auth == "basic" else "wrong-token")
    with pytest.raises(FetchError) as caught:
        _fetch(source, tmp_path)
    assert caught.value.kind is FetchFailure.AUTH_REFUSED and "wrong" not in str(caught.value)

    monkeypatch.setenv("CLEW_CREDENTIAL", value)
    [landed] = _fetch(source, tmp_path)

    assert isinstance(landed, LandedFile)


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "two words", "tøken"])
def test_a_malformed_bearer_token_fails_at_once_without_quoting_it(
    site: Site,
    make_source: MakeSource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    token: str,
) -> None:
    monkeypatch.setenv("CLEW_CREDENTIAL", token)

    with pytest.raises(FetchError) as caught:
        _fetch(make_source(auth="bearer", credentials_env="CLEW_CREDENTIAL"), tmp_path)

    assert caught.value.kind is FetchFailure.CONFIG and not caught.value.transient
    assert token.split()[0] not in str(caught.value)
    assert site.faults.requests == []


def test_a_configured_proxy_carries_the_tls_tunnel(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """The proxy sees CONNECT host:port only; the pin is still checked end to end."""
    drop.put("svs.tbl", _big())
    with running_proxy() as proxy:
        source = make_source(proxy=proxy.url, tls_pin=spki_pin(site.cert.cert))
        [landed] = _fetch(source, tmp_path)

    assert isinstance(landed, LandedFile)
    assert proxy.seen == [f"CONNECT 127.0.0.1:{site.server.port}"]


def test_https_proxy_from_the_environment_is_used_unless_no_proxy_says_otherwise(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop.put("svs.tbl", _big())
    with running_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        _fetch(make_source(), tmp_path)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        _fetch(make_source(), tmp_path)

    assert proxy.seen == [f"CONNECT 127.0.0.1:{site.server.port}"]


@pytest.mark.parametrize(
    ("refusal", "kind"),
    [
        (b"407 Proxy Authentication Required", FetchFailure.CONFIG),
        (b"502 Bad Gateway", FetchFailure.CONNECTION_DROPPED),
    ],
)
def test_a_proxy_that_refuses_the_tunnel_is_named(
    make_source: MakeSource, tmp_path: Path, refusal: bytes, kind: FetchFailure
) -> None:
    with running_proxy() as proxy:
        proxy.refuse = refusal
        with pytest.raises(FetchError) as caught:
            _fetch(make_source(proxy=proxy.url), tmp_path)

    assert caught.value.kind is kind and "proxy" in str(caught.value)
    assert caught.value.transient is (kind is FetchFailure.CONNECTION_DROPPED)


def test_a_pinned_key_is_checked_through_the_proxy_too(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    drop.put("svs.tbl", _big())
    other = issue(site.ca, tmp_path / "pki", "elsewhere")
    with running_proxy() as proxy, pytest.raises(FetchError) as caught:
        _fetch(make_source(proxy=proxy.url, tls_pin=spki_pin(other.cert)), tmp_path)

    assert caught.value.kind is FetchFailure.TLS_PIN_MISMATCH


def test_a_changed_key_is_refused_before_any_request_or_credential_is_sent(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pin is checked right after the handshake: the site never sees the request."""
    drop.put("svs.tbl", _big())
    other = issue(site.ca, tmp_path / "pki", "elsewhere")
    monkeypatch.setenv("CLEW_CREDENTIAL", "tok-123")
    source = make_source(
        tls_pin=spki_pin(other.cert), auth="bearer", credentials_env="CLEW_CREDENTIAL"
    )

    with pytest.raises(FetchError) as caught:
        _fetch(source, tmp_path)

    assert caught.value.kind is FetchFailure.TLS_PIN_MISMATCH
    assert site.faults.requests == []


def test_the_files_of_a_source_share_one_checked_connection(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """Three files, one tunnel: a response read to its end leaves the connection for the next."""
    for name in ("svs.tbl", "sfr.tbl", "slr.tbl"):
        drop.put(name, _big(1 << 18))
    files = {"svs": "svs.tbl", "sfr": "sfr.tbl", "slr": "slr.tbl"}
    with running_proxy() as proxy:
        source = make_source(proxy=proxy.url, files=files, tls_pin=spki_pin(site.cert.cert))
        landed = fetch("svs", source, list(files), tmp_path / "data", lambda feed: None)

    assert [type(item) for item in landed] == [LandedFile] * 3
    assert proxy.seen == [f"CONNECT 127.0.0.1:{site.server.port}"]
    assert site.get_paths() == ["/svs.tbl", "/sfr.tbl", "/slr.tbl"]


def test_a_refused_answer_does_not_leave_its_connection_for_the_next_file(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """A body left unread would be taken for the next answer: the connection is closed."""
    drop.put("svs.tbl", _big())
    drop.put("sfr.tbl", _big(1 << 18))
    site.faults.pages["/svs.tbl"] = ("text/html", b"<html><title>Sign in</title>" + b" " * 4096)
    with running_proxy() as proxy:
        source = make_source(proxy=proxy.url)
        with pytest.raises(FetchError):
            _fetch(source, tmp_path)
        [landed] = _fetch(make_source(proxy=proxy.url, files={"sfr": "sfr.tbl"}), tmp_path)

    assert isinstance(landed, LandedFile) and landed.size == 1 << 18
    assert len(proxy.seen) == 2


def test_a_proxy_reached_over_tls_is_refused_naming_the_form_to_use(
    make_source: MakeSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In the configuration: refused when it loads.
    with pytest.raises(ValueError, match="http://host:port"):
        make_source(proxy="https://proxy.agency.local:3128")
    # From the environment (read at fetch time): refused before anything is sent.
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.agency.local:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(FetchError) as caught:
        _fetch(make_source(), tmp_path)

    assert caught.value.kind is FetchFailure.CONFIG and not caught.value.transient
    assert "http://host:port" in str(caught.value) and "proxy.agency.local" in str(caught.value)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('url = "http://clew.example/svs"', "https://"),
        ('url = "https://agency:pw@clew.example/svs/"', "credentials_env"),
        ('tls_pin = "sha256/AAAA"', "tls_pin"),
        ('tls_pin = "sha1/" ', "tls_pin"),
        ('auth = "basic"', "credentials_secret"),
        ('auth = "bearer"\ncredentials_env = "HOTLIST_TOKEN"', "HOTLIST_"),
        ('proxy = "http://user:pw@proxy:3128"', "HTTPS_PROXY"),
        ('proxy = "socks5://proxy:1080"', "proxy"),
        ('auth = "client-certificate"', "client_cert"),
    ],
)
def test_a_wrong_https_setting_is_refused_naming_it(
    tmp_path: Path, line: str, problem: str
) -> None:
    config = tmp_path / "hotlist.toml"
    url = "" if line.startswith("url") else 'url = "https://clew.example/svs/"\n'
    config.write_text(f"[sources.svs]\n{url}{line}\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})

    assert problem in str(caught.value)


def test_a_file_on_another_host_is_refused_before_any_request(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    """Credentials are never sent to a host other than the source's."""
    source = make_source(files={"svs": "https://elsewhere.example/svs.tbl"})

    with pytest.raises(FetchError) as caught:
        _fetch(source, tmp_path)

    assert caught.value.kind is FetchFailure.CONFIG and "elsewhere.example" in str(caught.value)
    assert site.faults.requests == []


def test_the_validators_file_holds_only_validators_and_hashes(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    drop.put("svs.tbl", _big())
    [landed] = _fetch(make_source(), tmp_path)

    saved = json.loads((tmp_path / "data" / "http-validators" / "svs.json").read_text())

    assert saved == {
        "svs.tbl": {
            "etag": saved["svs.tbl"]["etag"],
            "last_modified": saved["svs.tbl"]["last_modified"],
            "sha256": landed.sha256,
        }
    }


# -- the embedded server of the demo ---------------------------------------------------------


def _raw_request(url: str, ca_file: Path, request: bytes) -> bytes:
    """Send bytes as they are (no client normalizing the path) and read the status line."""
    import socket
    import ssl

    parts = httpx.URL(url)
    context = ssl.create_default_context(cafile=ca_file)
    with (
        socket.create_connection((parts.host, parts.port or 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.host) as tls,
    ):
        tls.sendall(request)
        return tls.recv(4096).split(b"\r\n", 1)[0]


def test_the_demo_server_serves_a_directory_to_a_client_trusting_its_ca_and_pinning_its_key(
    drop: Drop, tmp_path: Path
) -> None:
    data = _big()
    drop.put("svs.tbl", data)
    pki = tmp_path / "demo-pki"
    with serve_directory(drop.root, pki) as demo:
        source = SourceConfig(
            url=demo.url, layout="clew-svs", files={"svs": "svs.tbl"},
            ca_file=demo.ca_file, tls_pin=demo.pin,
        )  # fmt: skip
        [landed] = _fetch(source, tmp_path)
        assert stat.S_IMODE((pki / "server.key").stat().st_mode) == 0o600

    assert isinstance(landed, LandedFile) and landed.path.read_bytes() == data
    assert not (pki / "server.key").exists()  # the private key does not outlive the server


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /../etc/passwd HTTP/1.1",
        b"GET /%2e%2e/etc/passwd HTTP/1.1",
        b"GET //etc/passwd HTTP/1.1",
        b"PUT /svs.tbl HTTP/1.1",
        b"DELETE /svs.tbl HTTP/1.1",
    ],
)
def test_the_demo_server_serves_nothing_outside_its_directory_and_changes_nothing(
    drop: Drop, tmp_path: Path, request_line: bytes
) -> None:
    drop.put("svs.tbl", _big())
    with serve_directory(drop.root, tmp_path / "pki") as demo:
        status = _raw_request(
            demo.url, demo.ca_file, request_line + b"\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )

    assert status.split(b" ")[1] in {b"404", b"501"}
    assert (drop.root / "svs.tbl").read_bytes() == _big()


# -- with a real Prefect API: Secret blocks and retries --------------------------------------


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with (
        prefect.settings.temporary_settings(updates={prefect.settings.PREFECT_HOME: home}),
        prefect_test_harness(server_startup_timeout=240),
    ):
        yield


def test_a_bearer_token_comes_from_a_prefect_secret_block(
    prefect_api: None, site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    from prefect.blocks.system import Secret

    Secret(value="tok-from-block").save("clew-token", overwrite=True)
    drop.put("svs.tbl", _big())
    site.faults.authorization = "Bearer tok-from-block"

    [landed] = _fetch(make_source(auth="bearer", credentials_secret="clew-token"), tmp_path)  # noqa: S106 (a block name)

    assert isinstance(landed, LandedFile)
    with pytest.raises(FetchError) as caught:
        _fetch(make_source(auth="bearer", credentials_secret="no-such-block"), tmp_path)  # noqa: S106
    assert caught.value.kind is FetchFailure.CONFIG and "no-such-block" in str(caught.value)


def test_the_ingest_flow_retries_a_503_and_applies_the_tables(
    prefect_api: None, site: Site, drop: Drop, tmp_path: Path
) -> None:
    """A transient failure (5xx) is retried by the fetch task; the run then completes."""
    from flows.ingest_svs import ingest_svs

    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.svs]\nurl = "{site.url}"\nca_file = "{site.ca.cert}"\n'
    )
    for name, plate in (("svs.tbl", "7SVS001"), ("sfr.tbl", "7SFR001"), ("slr.tbl", "7SLR001")):
        drop.put(name, clew_file([clew_line(plate)]))
    site.faults.status_once["/sfr.tbl"] = 503

    counts = ingest_svs(config=str(config))

    assert counts["files_applied"] == 3
    assert site.get_paths().count("/sfr.tbl") == 2


def test_the_ingest_flow_does_not_retry_a_403(
    prefect_api: None, site: Site, drop: Drop, tmp_path: Path
) -> None:
    from flows.ingest_svs import ingest_svs

    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.svs]\nurl = "{site.url}"\nca_file = "{site.ca.cert}"\n'
    )
    for name in ("svs.tbl", "sfr.tbl", "slr.tbl"):
        drop.put(name, clew_file([clew_line("7ABC123")]))
    site.faults.status["/svs.tbl"] = 403

    with pytest.raises(FetchError) as caught:
        ingest_svs(config=str(config))

    assert caught.value.kind is FetchFailure.PERMISSION_DENIED
    assert site.get_paths() == ["/svs.tbl"]


# -- hostile and broken sites ----------------------------------------------------------------


def test_a_part_file_left_by_a_killed_run_is_scrubbed_by_the_next(
    site: Site, drop: Drop, make_source: MakeSource, tmp_path: Path
) -> None:
    landing = tmp_path / "data" / "landing" / "svs"
    landing.mkdir(parents=True)
    (landing / "svs.tbl.part").write_bytes(b"7LEFT01 CA19...")
    drop.put("svs.tbl", _big())

    _fetch(make_source(), tmp_path)

    assert _landing_names(tmp_path) == ["svs.tbl"]


@pytest.mark.parametrize("name", ["a%2Fb.tbl", "%2e%2e%2Fsvs.tbl", "svs%00.tbl", "dir/"])
def test_a_file_path_that_would_land_outside_its_name_is_refused(
    site: Site, make_source: MakeSource, tmp_path: Path, name: str
) -> None:
    with pytest.raises(FetchError) as caught:
        _fetch(make_source(files={"svs": name}), tmp_path)

    assert caught.value.kind is FetchFailure.UNSAFE_NAME
    assert site.faults.requests == []


def test_a_site_that_never_completes_the_handshake_times_out_as_transient(
    make_source: MakeSource, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(FetchError) as caught:
            _fetch(make_source(url=f"https://127.0.0.1:{port}/", connect_timeout_s=0.5), tmp_path)

    assert caught.value.kind is FetchFailure.TIMEOUT and caught.value.transient


def test_repeated_etags_are_no_validator() -> None:
    response = httpx.Response(200, headers=[("ETag", '"a"'), ("ETag", '"b"')])

    assert strong_validators(response).etag is None


def test_a_connection_closed_during_the_handshake_is_transient_not_a_tls_refusal(
    make_source: MakeSource, tmp_path: Path
) -> None:
    import socket
    import threading

    with socket.socket() as closing:
        closing.bind(("127.0.0.1", 0))
        closing.listen()
        port = closing.getsockname()[1]

        def hang_up() -> None:
            conn, _ = closing.accept()
            conn.recv(4096)  # the ClientHello
            conn.close()

        threading.Thread(target=hang_up, daemon=True).start()
        with pytest.raises(FetchError) as caught:
            _fetch(make_source(url=f"https://127.0.0.1:{port}/"), tmp_path)

    assert caught.value.kind is FetchFailure.CONNECTION_DROPPED and caught.value.transient


# -- the web-page refusal, as properties -----------------------------------------------------

_RECORD_LINE = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 /:.-", min_size=1, max_size=80
).filter(str.strip)


@given(
    first=_RECORD_LINE,
    rest=st.lists(st.text(alphabet=string.printable, max_size=80), max_size=40),
    content_type=st.sampled_from(["", "text/plain", "application/octet-stream"]),
)
def test_a_table_of_records_is_never_taken_for_a_web_page(
    first: str, rest: list[str], content_type: str
) -> None:
    """Only the start of the body counts: markup further in (a record's free text) does not."""
    refuse_web_page("https://x/svs.tbl", content_type, "\n".join([first, *rest]).encode())


@given(
    title=st.text(min_size=1, max_size=120).filter(lambda t: "<" not in t and t.strip()),
    casing=st.sampled_from(["<!DOCTYPE html>", "<html>", "\n\t<HTML lang=en>", "<?xml ?>"]),
)
def test_a_web_page_is_refused_naming_its_title_and_nothing_else_of_it(
    title: str, casing: str
) -> None:
    page = f"{casing}<head><title>{title}</title></head><body>7SECRET1</body>".encode()

    with pytest.raises(FetchError) as caught:
        refuse_web_page("https://x/svs.tbl", "application/octet-stream", page)

    text = str(caught.value)
    assert caught.value.kind is FetchFailure.NOT_A_TABLE and "titled" in text
    assert "7SECRET1" not in text
    assert all(c.isprintable() for c in text)
