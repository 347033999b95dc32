"""The PostgreSQL serving state's schema: created and migrated by `hotlist db upgrade`,
idempotently, with a refusal for a migration edited after it was applied."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import ConfigError, load_settings
from hotlist.pg import DatabaseUnavailable, SchemaNotCurrent, connect
from hotlist.pg.migrate import migrations, require_current, upgrade

runner = CliRunner()


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "hotlist.toml"
    path.write_text(f'data_dir = "data"\n[serve]\ndatabase_url = "{url}"\n')
    return path


def test_upgrade_creates_the_schema_once_and_then_does_nothing(pg_url: str) -> None:
    first = upgrade(pg_url)
    assert [m.version for m in first] == [m.version for m in migrations()]
    assert upgrade(pg_url) == []
    with connect(pg_url) as con:
        require_current(con)
        tables = {r[0] for r in con.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"consumers", "acks", "last_seen", "replicas", "hotlist_schema_migrations"} <= tables


def test_two_upgrades_at_once_apply_each_migration_once(pg_url: str) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(len(upgrade(pg_url)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [0, len(migrations())]


def test_a_server_refuses_a_database_that_was_never_upgraded(pg_url: str) -> None:
    with connect(pg_url) as con, pytest.raises(SchemaNotCurrent, match="hotlist db upgrade"):
        require_current(con)


def test_a_migration_changed_after_it_was_applied_is_refused(pg_url: str) -> None:
    upgrade(pg_url)
    with connect(pg_url) as con:
        con.execute("UPDATE hotlist_schema_migrations SET sha256 = 'edited' WHERE version = 1")
    with pytest.raises(SchemaNotCurrent, match="was changed after"):
        upgrade(pg_url)


def test_db_upgrade_and_status_on_the_command_line(tmp_path: Path, pg_url: str) -> None:
    config = str(_config(tmp_path, pg_url))
    before = runner.invoke(app, ["db", "status", "--config", config])
    assert before.exit_code == 1, before.output
    assert "missing" in before.output
    done = runner.invoke(app, ["db", "upgrade", "--config", config])
    assert done.exit_code == 0, done.output
    assert "applied 0001" in done.output
    again = runner.invoke(app, ["db", "upgrade", "--config", config])
    assert again.exit_code == 0 and "nothing to do" in again.output
    after = runner.invoke(app, ["db", "status", "--config", config])
    assert after.exit_code == 0, after.output


def test_db_commands_without_a_database_url_say_so(tmp_path: Path) -> None:
    config = tmp_path / "hotlist.toml"
    config.write_text('data_dir = "data"\n')
    result = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 2
    assert "no [serve] database_url" in result.output


def test_an_unreachable_database_is_named_without_a_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://hotlist@127.0.0.1:{port}/serving"
    with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port}/serving"):
        connect(url)
    result = runner.invoke(app, ["db", "upgrade", "--config", str(_config(tmp_path, url))])
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}/serving" in result.output


def test_a_password_in_database_url_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, "postgresql://hotlist:s3cret@db/serving")
    with pytest.raises(ConfigError, match="PGPASSWORD") as raised:
        load_settings(config, environ={})
    assert "s3cret" not in str(raised.value)


def test_a_relative_published_dir_is_relative_to_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "hotlist.toml"
    config.write_text('data_dir = "data"\n[serve]\npublished_dir = "shared/published"\n')
    settings = load_settings(config, environ={})
    assert settings.published_dir == tmp_path / "shared" / "published"
    default = tmp_path / "default.toml"
    default.write_text('data_dir = "data"\n')
    assert load_settings(default, environ={}).published_dir == tmp_path / "data" / "published"


def test_psycopg_reaches_the_cluster(pg_url: str) -> None:
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
