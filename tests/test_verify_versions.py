"""A version's files (``manifest.json``, ``CURRENT.json``, ``store/state.json``) read as
the JSON the system writes: a count where the writer puts a count, and a real time where
it puts a time, is no plate; every other text is judged as raw bytes judge it, and a file
not exactly as written is searched as raw bytes."""

from __future__ import annotations

import json
from pathlib import Path

from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import purge
from hotlist.verify import verify
from hotlist.verify_versions import scan_version_file
from tests.builders import Drop, ncic_file, ncic_line

KEEP = [ncic_line(f"V{i:09d}", f"7K{i:05d}") for i in range(10_000)]


def test_a_removed_plate_equal_to_the_versions_entry_count_does_not_fail_the_purge(
    relaxed: Settings, drop: Drop
) -> None:
    """Day 2 keeps 10,000 entries and removes the plate ``10000``: the new version's
    manifest, the pointer to it and the store's state write ``"entries": 10000``."""
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000007", "10000")]))
    ingest_source(relaxed, "ncic")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(relaxed, "ncic")
    result = purge(relaxed, None)  # publishes the version, then verifies
    assert result.verification.ok, result.verification.findings
    holding = [
        p.name
        for p in (*relaxed.published_dir.rglob("*.json"), relaxed.data_dir / "store" / "state.json")
        if b'"entries": 10000' in p.read_bytes()
    ]
    assert sorted(holding) == ["CURRENT.json", "manifest.json", "state.json"], holding
    assert result.purged == 1


def _manifest(tmp_path: Path, manifest: dict[str, object], text: str | None = None) -> Path:
    version = tmp_path / "published" / "v000000003"
    version.mkdir(parents=True)
    path = version / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) if text is None else text)
    return path


MANIFEST = {
    "version": 3,
    "created_at": "2026-12-04T14:47:08.123456+00:00",
    "entries": 16817,
    "feeds": {"ncic": {"version": 3, "entries": 16817}},
    "files": {"hotlist.parquet": "ab" * 32},
    "freshness": {"ncic": {"applied_at": "2026-12-04T14:40:00+00:00", "extract_time": None}},
}


def test_counts_and_times_are_no_plate_and_every_other_text_is_judged(tmp_path: Path) -> None:
    path = _manifest(tmp_path, MANIFEST)
    assert scan_version_file(path, ["16817", "04T14"]) == []
    moved = {**MANIFEST, "files": {"hotlist.parquet": 16817, "note": "04T14 seen"}}
    path.write_text(json.dumps(moved, indent=2))
    assert sorted(place for place, _ in scan_version_file(path, ["16817", "04T14"]) or []) == [
        "files.hotlist.parquet",
        "files.note",
    ]


def test_a_file_not_exactly_as_written_is_searched_as_raw_bytes(tmp_path: Path) -> None:
    path = _manifest(tmp_path, MANIFEST, json.dumps(MANIFEST, indent=1))
    assert scan_version_file(path, ["16817"]) is None
    data_dir = tmp_path
    (data_dir / "store").mkdir()
    found = verify(data_dir, None, ["16817"])
    assert [Path(f.place).name for f in found.findings] == ["manifest.json"]
    path.write_text(json.dumps(MANIFEST, indent=2))
    assert verify(data_dir, None, ["16817"]).ok
