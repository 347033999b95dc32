"""Files holding record content or a secret are 0600 wherever they are written (#13):
a patrol copy in a world-readable directory, a key file that already existed 0644, a
deletion report or an access-log export written with ``--out``, the demo's report."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings
from hotlist.private import write_private
from hotlist.purge import purge
from hotlist.serve import consumers as reg
from tests.builders import Drop
from tests.cli_support import config_of, load_sample
from tests.serving import local_copy, running_api

runner = CliRunner()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    """The umask most machines run with: without care, new files come out 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def published(settings: Settings, drop: Drop) -> Settings:
    load_sample(settings, drop)
    purge(settings, None)
    return settings


def _world_readable_file(path: Path, text: str = "old\n") -> Path:
    path.write_text(text)
    path.chmod(0o644)
    return path


def test_a_patrol_copy_pulled_into_a_world_readable_directory_is_private(
    published: Settings, tmp_path: Path
) -> None:
    key = reg.add(published.data_dir, "car-7", "CA0190000", "PD", reg.AgencyKind.CA_LOCAL)
    key_file = tmp_path / "car-7.key"
    write_private(key_file, key)
    out = tmp_path / "shared"
    out.mkdir(mode=0o755)
    with running_api(published) as api:
        args = ["pull", "--server", api, "--key-file", str(key_file), "--user", "car7",
                "--purpose", "patrol", "--out", str(out)]  # fmt: skip
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert {p.name: mode(p) for p in out.iterdir()} == {
            "hotlist.lines": 0o600,
            "state.json": 0o600,
        }
        # a copy left 0644 (by an older client, an operator) is made private even when
        # the pull is refused
        (out / "hotlist.lines").chmod(0o644)
        reg.revoke(published.data_dir, "car-7")
        # The server's key cache trusts its last look for RECHECK_S (a revocation holds
        # within the second the API promises); a pull sooner could still be served.
        time.sleep(2 * reg.RECHECK_S)
        refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "pull refused" in refused.stderr
    assert mode(out / "hotlist.lines") == 0o600


def test_a_key_file_that_existed_world_readable_is_rewritten_private(
    settings: Settings, tmp_path: Path
) -> None:
    key_file = _world_readable_file(tmp_path / "car-7.key")
    config = config_of(settings)
    added = runner.invoke(
        app,
        ["consumers", "add", "car-7", "--agency-ori", "CA0190000", "--agency-name", "PD",
         "--agency-kind", "ca-local", "--key-file", str(key_file), "-c", config],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert mode(key_file) == 0o600
    key_file.chmod(0o644)
    rotated = runner.invoke(
        app, ["consumers", "rotate", "car-7", "--key-file", str(key_file), "-c", config]
    )
    assert rotated.exit_code == 0, rotated.output
    assert mode(key_file) == 0o600
    assert reg.by_key(settings.data_dir, key_file.read_text().strip()) is not None


def test_a_deletion_report_written_with_out_is_private(published: Settings, tmp_path: Path) -> None:
    new, old = tmp_path / "new.html", _world_readable_file(tmp_path / "old.csv")
    for out, fmt in ((new, "html"), (old, "csv")):
        done = runner.invoke(
            app,
            ["report", "deletions", "-c", config_of(published), "--format", fmt, "--out", str(out)],
        )
        assert done.exit_code == 0, done.output
        assert mode(out) == 0o600
    assert "<html" in new.read_text().lower()


def test_an_access_log_export_over_a_world_readable_file_is_private(
    published: Settings, tmp_path: Path
) -> None:
    lookup = ["lookup", "7ABC123", "--user", "jdoe", "--org", "CA0190000", "--purpose", "patrol"]
    assert runner.invoke(app, [*lookup, "-c", config_of(published)]).exit_code == 0
    out = _world_readable_file(tmp_path / "access.csv")
    done = runner.invoke(app, ["audit", "export", "-c", config_of(published), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert mode(out) == 0o600
    assert "jdoe" in out.read_text()


def test_the_demos_deletion_report_is_private(published: Settings) -> None:
    from hotlist.demo import write_report

    report, summary = write_report(published)
    assert mode(report) == 0o600
    assert summary["removed_records"] == 0


def test_a_leftover_temporary_file_is_made_private_and_a_planted_symlink_refused(
    tmp_path: Path,
) -> None:
    target = tmp_path / "copy.parquet"
    _world_readable_file(tmp_path / "copy.parquet.tmp", "leftover of a killed run")
    write_private(target, b"new")
    assert (mode(target), target.read_bytes()) == (0o600, b"new")
    assert not (tmp_path / "copy.parquet.tmp").exists()
    elsewhere = _world_readable_file(tmp_path / "elsewhere", "not ours")
    (tmp_path / "copy.parquet.tmp").symlink_to(elsewhere)
    with pytest.raises(OSError, match=r"symbolic links|Too many levels"):
        write_private(target, b"newer")
    assert elsewhere.read_text() == "not ours"
    assert target.read_bytes() == b"new"


def test_two_pulls_into_one_directory_at_once_leave_one_whole_copy(
    published: Settings, tmp_path: Path
) -> None:
    import threading

    from hotlist.serve.client import PullResult, pull

    key = reg.add(published.data_dir, "car-7", "CA0190000", "PD", reg.AgencyKind.CA_LOCAL)
    out = tmp_path / "copy"
    results: list[PullResult | BaseException] = []

    def one() -> None:
        try:
            results.append(pull(api, key, "car7", "patrol", out))
        except BaseException as exc:
            results.append(exc)

    with running_api(published) as api:
        threads = [threading.Thread(target=one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert all(isinstance(r, PullResult) for r in results), results
    assert len(results) == 4
    assert sorted(p.name for p in out.iterdir()) == ["hotlist.lines", "state.json"]
    assert local_copy(out).height == 5  # 2 NCIC, 3 CLEW entries


def test_a_pull_on_behalf_of_a_utf8_user_is_logged_under_that_name(
    published: Settings, tmp_path: Path
) -> None:
    from hotlist import audit

    key = reg.add(published.data_dir, "car-7", "CA0190000", "PD", reg.AgencyKind.CA_LOCAL)
    key_file = write_private(tmp_path / "car-7.key", key)
    with running_api(published) as api:
        done = runner.invoke(
            app,
            ["pull", "--server", api, "--key-file", str(key_file), "--user", "Jos\u00e9 N\u00fa\u00f1ez",
             "--purpose", "patrol", "--out", str(tmp_path / "copy")],
        )  # fmt: skip
    assert done.exit_code == 0, done.output
    users = {r["user"] for r in audit.records(published.data_dir) if r["channel"] == "api"}
    assert users == {"Jos\u00e9 N\u00fa\u00f1ez"}
