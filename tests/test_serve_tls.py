"""The patrol API over TLS (CJIS: criminal justice information encrypted in transit): a
real ``hotlist serve`` process with certificates ``openssl`` issues at test time, pulled
by ``hotlist pull``; mutual TLS; plain HTTP refused off loopback at both ends."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from hotlist import audit
from hotlist.cli import app
from hotlist.config import ConfigError, Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.serve import consumers as reg
from hotlist.serve.client import Follower, PullError, PullResult, Transport
from hotlist.serve.copies import COPY_FILES
from hotlist.serve.tls import is_loopback, server_tls
from tests.builders import Drop, ncic_file, ncic_line
from tests.serving import local_copy, running_api, server_process

BASE = [ncic_line(f"V{i:09d}", f"7TLS{i:03d}") for i in range(30)]
runner = CliRunner()
#: Every IPv4 address of this machine: what a server off loopback listens on.
EVERY_ADDRESS = "0.0.0.0"  # noqa: S104


@dataclass(frozen=True)
class Pki:
    """Two unrelated CAs; a server certificate (127.0.0.1, localhost) and a client
    certificate issued by the first; a client certificate issued by the second."""

    ca: Path
    other_ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key_and_request(where: Path, name: str) -> tuple[Path, Path]:
    key, csr = where / f"{name}.key", where / f"{name}.csr"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")  # fmt: skip
    key.chmod(0o600)
    return key, csr


def _ca(where: Path, name: str) -> tuple[Path, Path]:
    key, cert = where / f"{name}.key", where / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}", "-days", "2",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return cert, key


def _issue(where: Path, ca: tuple[Path, Path], name: str, extensions: str) -> tuple[Path, Path]:
    key, csr = _key_and_request(where, name)
    ext = where / f"{name}.ext"
    ext.write_text(extensions)
    cert = where / f"{name}.pem"
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext))  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("pki")
    ca, other = _ca(where, "patrol-ca"), _ca(where, "unrelated-ca")
    server = _issue(
        where,
        ca,
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    client = _issue(where, ca, "car-12", "extendedKeyUsage=clientAuth\n")
    stranger = _issue(where, other, "stranger", "extendedKeyUsage=clientAuth\n")
    return Pki(ca[0], other[0], server, client, stranger)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings("guards = {max_removal_share = 0.5}")


def _publish(settings: Settings, drop: Drop, lines: list[str], n: int) -> None:
    drop.put("VEHEXTRT.txt", ncic_file(lines, stamp=f"2026112{n}0800"))
    ingest_source(settings, "ncic")
    purge(settings, None)


@pytest.fixture
def key_file(settings: Settings, drop: Drop, tmp_path: Path) -> Path:
    _publish(settings, drop, BASE, 1)
    key = reg.add(settings.data_dir, "car-12", "CA0190000", "Demo PD", reg.AgencyKind.CA_LOCAL)
    path = tmp_path / "car-12.key"
    path.write_text(key)
    path.chmod(0o600)
    return path


def _config(settings: Settings) -> Path:
    return settings.data_dir.parent / "hotlist.toml"


def _https(pki: Pki, *more: str) -> tuple[str, ...]:
    return ("--certfile", str(pki.server[0]), "--keyfile", str(pki.server[1]), *more)


def _pull(url: str, key_file: Path, out: Path, *more: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["pull", "--server", url, "--key-file", str(key_file), "--user", "car12",
         "--purpose", "patrol", "--out", str(out), *more],
    )  # fmt: skip
    return result.exit_code, result.stdout + result.stderr


def _plates(out: Path) -> set[str]:
    return set(local_copy(out)["plate"])


# -- HTTPS -------------------------------------------------------------------------------


def test_a_pull_over_https_verified_with_ca_file_works_and_is_logged(
    settings: Settings, key_file: Path, pki: Pki, tmp_path: Path
) -> None:
    with server_process(_config(settings), tmp_path, *_https(pki)) as server:
        url = f"https://127.0.0.1:{server.port}"
        code, output = _pull(url, key_file, tmp_path / "copy", "--ca-file", str(pki.ca))
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP is not answered
            httpx.get(f"http://127.0.0.1:{server.port}/v1/hotlist", timeout=10)
    assert code == 0, output
    assert "now at version 1" in output
    assert "7TLS000" in _plates(tmp_path / "copy")
    logged = [
        (r["data_element"], r["user"], r["client"], r["outcome"])
        for r in audit.records(settings.data_dir)
    ]
    assert logged == [
        ("full version 1", "car12", "127.0.0.1", "granted"),
        ("ack version 1", "car12", "127.0.0.1", "granted"),
    ]  # the plain HTTP request never reached the API
    assert "Uvicorn running on https://" in server.stderr.read_text()


def test_the_config_file_gives_the_certificate_relative_to_itself(
    settings: Settings, key_file: Path, pki: Pki, tmp_path: Path
) -> None:
    config = _config(settings)
    for name in ("server.pem", "server.key"):
        (config.parent / name).write_bytes((pki.server[0].parent / name).read_bytes())
    (config.parent / "server.key").chmod(0o600)
    with config.open("a") as fh:
        fh.write('[serve]\ncertfile = "server.pem"\nkeyfile = "server.key"\n')
    with server_process(config, tmp_path, "--host", EVERY_ADDRESS) as server:
        code, output = _pull(
            f"https://localhost:{server.port}",
            key_file,
            tmp_path / "copy",
            "--ca-file",
            str(pki.ca),
        )
    assert code == 0, output


def test_a_server_whose_certificate_does_not_verify_is_refused_by_name(
    settings: Settings, key_file: Path, pki: Pki, tmp_path: Path
) -> None:
    with server_process(_config(settings), tmp_path, *_https(pki)) as server:
        url = f"https://127.0.0.1:{server.port}"
        wrong_ca = _pull(url, key_file, tmp_path / "copy", "--ca-file", str(pki.other_ca))
        system_store = _pull(url, key_file, tmp_path / "copy")
    assert wrong_ca[0] == 1
    assert f"127.0.0.1 port {server.port} did not verify against --ca-file" in wrong_ca[1]
    assert "unable to get local issuer certificate" in wrong_ca[1]
    assert system_store[0] == 1
    assert "did not verify against the system's trusted CAs" in system_store[1]
    assert not any((tmp_path / "copy" / name).exists() for name in COPY_FILES.values())
    assert not [r for r in audit.records(settings.data_dir) if r["channel"] == "api"]


def test_the_server_speaks_tls_1_2_and_nothing_older(
    settings: Settings, key_file: Path, pki: Pki, tmp_path: Path
) -> None:
    """TLS 1.2 clients (older patrol systems) connect; the floor is 1.2. (This OpenSSL
    build cannot speak TLS 1.1 at either end, so the floor is read off the context.)"""
    with server_process(_config(settings), tmp_path, *_https(pki)) as server:
        accepted = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_2",
             "-CAfile", str(pki.ca), "-verify_return_error"],
            input=b"", capture_output=True, timeout=30,
        )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert b"Protocol  : TLSv1.2" in accepted.stdout
    assert b"Cipher is (NONE)" not in accepted.stdout
    assert server_tls(*pki.server).context.minimum_version == ssl.TLSVersion.TLSv1_2


# -- mutual TLS --------------------------------------------------------------------------


def test_mutual_tls_refuses_a_client_without_a_certificate_from_its_ca(
    settings: Settings, key_file: Path, pki: Pki, tmp_path: Path
) -> None:
    args = _https(pki, "--client-ca", str(pki.ca))
    trust = ("--ca-file", str(pki.ca))
    with server_process(_config(settings), tmp_path, *args) as server:
        url = f"https://127.0.0.1:{server.port}"
        without = _pull(url, key_file, tmp_path / "copy", *trust)
        stranger = _pull(url, key_file, tmp_path / "copy", *trust,
                         "--client-cert", str(pki.stranger[0]),
                         "--client-key", str(pki.stranger[1]))  # fmt: skip
        with_cert = _pull(url, key_file, tmp_path / "copy", *trust,
                          "--client-cert", str(pki.client[0]),
                          "--client-key", str(pki.client[1]))  # fmt: skip
    assert without[0] == 1
    assert "closes the connection so when none is presented: give --client-cert" in without[1]
    assert stranger[0] == 1
    assert "when it does not trust --client-cert" in stranger[1]
    assert with_cert[0] == 0, with_cert[1]
    assert "7TLS000" in _plates(tmp_path / "copy")
    api = [r for r in audit.records(settings.data_dir) if r["channel"] == "api"]
    assert [r["data_element"] for r in api] == ["full version 1", "ack version 1"]


# -- following over HTTPS ----------------------------------------------------------------


def _until(done: Callable[[], bool], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.1)


def test_following_over_mutual_tls_applies_each_new_version(
    settings: Settings, drop: Drop, key_file: Path, pki: Pki, tmp_path: Path
) -> None:
    tls = server_tls(*pki.server, client_ca=pki.ca)
    transport = Transport(pki.ca, *pki.client)
    out = tmp_path / "copy"
    seen: list[PullResult] = []
    key = key_file.read_text()
    with running_api(settings, tls=tls.context) as url:
        assert url.startswith("https://127.0.0.1:")
        follower = Follower(url, key, "car12", "patrol", out, 2, seen.append, transport)
        thread = threading.Thread(target=follower.run)
        thread.start()
        try:
            _until(lambda: len(seen) == 1)
            _publish(settings, drop, BASE[1:], 2)
            _until(lambda: len(seen) == 2)
        finally:
            follower.stop()
            thread.join(timeout=60)
    assert [(r.version, r.full) for r in seen] == [(1, True), (2, False)]
    assert "7TLS000" not in _plates(out)
    [consumer] = reg.all_consumers(settings.data_dir)
    assert consumer.acked_version == 2


def test_following_a_server_that_does_not_verify_stops_instead_of_retrying(
    settings: Settings, key_file: Path, pki: Pki, tmp_path: Path
) -> None:
    tls = server_tls(*pki.server)
    with running_api(settings, tls=tls.context) as url:
        follower = Follower(
            url, key_file.read_text(), "car12", "patrol", tmp_path / "copy", 30,
            transport=Transport(pki.other_ca),
        )  # fmt: skip
        started = time.monotonic()
        with pytest.raises(PullError, match="did not verify against --ca-file"):
            follower.run()
    assert follower.failures == 0
    assert time.monotonic() - started < 10


# -- plain HTTP only on loopback ----------------------------------------------------------


@pytest.mark.parametrize("host", [EVERY_ADDRESS, "::", "192.0.2.10", "nowhere.invalid"])
def test_serving_plain_http_off_loopback_is_refused_with_the_fix(
    settings: Settings, key_file: Path, host: str
) -> None:
    result = runner.invoke(app, ["serve", "-c", str(_config(settings)), "--host", host])
    assert result.exit_code == 2
    assert f"--host {host} is not a loopback address" in result.stderr
    assert "--certfile and --keyfile" in result.stderr
    assert "--allow-plain-http" in result.stderr


def test_allow_plain_http_serves_off_loopback(
    settings: Settings, key_file: Path, tmp_path: Path
) -> None:
    args = ("--host", EVERY_ADDRESS, "--allow-plain-http")
    with server_process(_config(settings), tmp_path, *args) as server:
        code, output = _pull(f"http://127.0.0.1:{server.port}", key_file, tmp_path / "copy")
    assert code == 0, output
    assert f"Uvicorn running on http://{EVERY_ADDRESS}:{server.port}" in server.stderr.read_text()


def test_the_client_refuses_plain_http_to_a_host_off_loopback(
    key_file: Path, tmp_path: Path
) -> None:
    """Refused before any connection; allowed, it connects (to a server that hangs up)."""
    connected: list[str] = []

    def hang_up(listener: socket.socket) -> None:
        try:
            connection, (peer, _) = listener.accept()
        except TimeoutError:
            return
        connected.append(peer)
        connection.close()

    own = _non_loopback_address()
    with socket.socket() as listener:
        listener.bind((own, 0))
        listener.listen()
        listener.settimeout(5)
        url = f"http://{own}:{listener.getsockname()[1]}"
        for more in ((), ("--follow",)):
            code, output = _pull(url, key_file, tmp_path / "copy", *more)
            assert code == 2, output
            assert f"plain http:// to {own}, which is not a loopback address" in output
            assert "Use https://" in output
        hanging_up = threading.Thread(target=hang_up, args=(listener,))
        hanging_up.start()
        hanging_up.join()
        assert connected == []
        listener.settimeout(30)
        hanging_up = threading.Thread(target=hang_up, args=(listener,))
        hanging_up.start()
        allowed = _pull(url, key_file, tmp_path / "copy", "--allow-plain-http")
        hanging_up.join()
    assert connected == [own]
    assert allowed[0] == 1 and "could not be reached" in allowed[1]


def _non_loopback_address() -> str:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.fail("this machine has no address other than loopback")
    return address


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
     ("::ffff:127.0.0.1", True), ("localhost", True), (EVERY_ADDRESS, False), ("::", False),
     ("10.0.0.5", False), ("fe80::1", False), ("nowhere.invalid", False), ("", False)],
)  # fmt: skip
def test_loopback_is_every_address_of_the_host_being_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# -- the files ----------------------------------------------------------------------------


def test_unusable_tls_files_are_refused_before_anything_listens(
    settings: Settings, key_file: Path, pki: Pki, tmp_path: Path
) -> None:
    config = str(_config(settings))
    cert, key = (str(p) for p in pki.server)
    open_key = tmp_path / "open.key"
    open_key.write_bytes(pki.server[1].read_bytes())
    open_key.chmod(0o640)
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", key, "-aes256", "-passout", "pass:x",
                    "-out", str(encrypted)], check=True)  # fmt: skip
    encrypted.chmod(0o600)
    cases = {
        "does not exist": ["--certfile", str(tmp_path / "none.pem"), "--keyfile", key],
        f"is not the key of certfile {cert}": ["--certfile", cert, "--keyfile", str(pki.client[1])],
        "can be read by other users (mode 640)": ["--certfile", cert, "--keyfile", str(open_key)],
        "is encrypted": ["--certfile", cert, "--keyfile", str(encrypted)],
        f"certfile {key} is not a PEM certificate": ["--certfile", key, "--keyfile", key],
        "go together": ["--certfile", cert],
        "needs --certfile": ["--client-ca", str(pki.ca)],
        "client_ca /nowhere.pem does not exist": [*_https(pki), "--client-ca", "/nowhere.pem"],
    }
    for expected, args in cases.items():
        result = runner.invoke(app, ["serve", "-c", config, *args])
        assert result.exit_code == 2, (expected, result.stderr)
        assert expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_an_unreadable_key_is_named(pki: Pki, tmp_path: Path) -> None:
    key = tmp_path / "a directory.key"
    key.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match=r"keyfile .*a directory\.key cannot be read"):
        server_tls(pki.server[0], key)


def test_a_certificate_about_to_expire_is_warned_about(pki: Pki) -> None:
    [warning] = server_tls(*pki.server).warnings  # issued for two days
    assert "expires" in warning and "renew it" in warning
    month_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    assert server_tls(*pki.server, now=month_ago).warnings == ()
