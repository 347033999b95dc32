"""Hostile path names: a data_dir with an apostrophe, a space and non-ASCII letters
publishes and purges like any other (no SQL is built by pasting a path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotlist.config import load_settings
from hotlist.ingest import ingest_source
from hotlist.lookup import find_hits
from hotlist.purge import PurgeIncomplete, purge
from tests.builders import Drop, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(30)]


@pytest.mark.parametrize("name", ["o'brien's data", 'données "ü" ünïcode', "it's a ' space"])
def test_publish_and_purge_work_in_a_data_dir_with_quotes_spaces_and_non_ascii(
    tmp_path: Path, drop: Drop, name: str
) -> None:
    data_dir = tmp_path / name
    config = tmp_path / "hotlist.toml"
    config.write_text(
        f"data_dir = {json.dumps(str(data_dir))}\n"
        f'[sources.ncic]\nurl = "file://{drop.root}"\nguards = {{max_removal_share = 0.5}}\n',
        encoding="utf-8",
    )
    settings = load_settings(config, environ={})
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000001", "ZQXPATH1")]))
    ingest_source(settings, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")
    result = purge(settings, None)
    assert result.verification.ok, result.verification.findings
    assert (result.purged, result.verification.markers) == (1, 1)
    current = json.loads((data_dir / "published" / "CURRENT.json").read_text())
    assert current["entries"] == len(KEEP)
    assert find_hits(data_dir, "7KEEP001")
    assert not find_hits(data_dir, "ZQXPATH1")


def test_a_published_dir_outside_data_dir_is_published_erased_and_searched_like_it(
    tmp_path: Path, drop: Drop
) -> None:
    """``[serve] published_dir`` on shared storage: versions are published there (not
    under data_dir), superseded ones are scrubbed there, and a copy that survived a
    removal there is found by the purge's verification (and by ``verify``), naming it."""
    from hotlist.verify import verify

    shared = tmp_path / "shared" / "published"
    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[serve]\npublished_dir = "{shared}"\n'
        f'[sources.ncic]\nurl = "file://{drop.root}"\nguards = {{max_removal_share = 0.5}}\n',
        encoding="utf-8",
    )
    settings = load_settings(config, environ={})
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000001", "ZQXPUBL1")]))
    ingest_source(settings, "ncic")
    assert purge(settings, None).verification.ok
    assert (shared / "v000000001" / "hotlist.parquet").is_file()
    assert not (settings.data_dir / "published").exists()
    # A copy of version 1 left beside the versions (a hand-made backup, a sync tool).
    survived = shared / "backup" / "hotlist.csv"
    survived.parent.mkdir()
    survived.write_bytes((shared / "v000000001" / "hotlist.csv").read_bytes())
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")
    with pytest.raises(PurgeIncomplete) as failed:
        purge(settings, None)
    places = {f.place for f in failed.value.verification.findings}
    assert places == {f"{survived}:plate"}, failed.value.verification.findings
    assert not (shared / "v000000001").exists()  # the superseded version: scrubbed there
    assert json.loads((shared / "CURRENT.json").read_text())["version"] == 2
    assert not find_hits(settings.data_dir, "ZQXPUBL1")
    # Once the copy is gone, the pending removal purges and verifies clean, in both roots.
    survived.unlink()
    result = purge(settings, None)
    assert result.verification.ok and result.purged == 1
    assert verify(settings.data_dir, None, ["ZQXPUBL1"], published=shared).ok
    survived.write_text("plate\nZQXPUBL1\n")
    assert not verify(settings.data_dir, None, ["ZQXPUBL1"], published=shared).ok
