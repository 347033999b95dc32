"""``[serve] published_dir`` pointed at a directory that holds more than the hotlist's
versions (the root of a shared mount, or data_dir itself): the purge scrubs and removes
only its own superseded version directories, never another directory whose name happens
to start with ``v``."""

from __future__ import annotations

from pathlib import Path

from hotlist.config import load_settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from tests.builders import Drop, ncic_file, ncic_line

LINES = [ncic_line(f"V{i:09d}", f"7PUB{i:03d}") for i in range(30)]


def test_the_purge_leaves_other_directories_of_a_shared_published_dir(
    tmp_path: Path, drop: Drop
) -> None:
    shared = tmp_path / "mnt-shared"
    (shared / "videos").mkdir(parents=True)
    (shared / "videos" / "briefing.mp4").write_bytes(b"not the hotlist's")
    (shared / "vendor-drop").mkdir()
    config = tmp_path / "hotlist.toml"
    config.write_text(
        f'data_dir = "data"\n[sources.ncic]\nurl = "file://{drop.root}"\nlayout = "ncic-fixed"\n'
        f'[sources.svs]\nurl = "file://{drop.root}"\n[serve]\npublished_dir = "{shared}"\n'
    )
    settings = load_settings(config, environ={})
    for stamp, lines in (("202611210800", LINES), ("202611220800", LINES[:29])):
        drop.put("VEHEXTRT.txt", ncic_file(lines, stamp=stamp))
        ingest_source(settings, "ncic")
        purge(settings, None)
    assert (shared / "videos" / "briefing.mp4").read_bytes() == b"not the hotlist's"
    assert (shared / "vendor-drop").is_dir()
    assert sorted(p.name for p in shared.glob("v0*")) == ["v000000002"]
