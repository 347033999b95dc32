"""Published hotlist versions: immutable files patrol systems pull, switched atomically.

``published_dir`` (``[serve] published_dir``, default ``data_dir/published``; on storage
every ``hotlist serve`` replica reads, ``docs/deploy.md``)::

    CURRENT.json            the current version: number, files, counts, freshness
    v<N>/hotlist.parquet    every entry of hotlist version N (all feeds)
    v<N>/hotlist.csv        the same, for systems that take files
    changes/v<N>.parquet    ids only: entry_id, op (add/change/remove) of version N

A version directory is written under a temporary name, fsynced, renamed, and only then
named in CURRENT.json (written to a temporary file and renamed): a reader sees a whole
version or the previous one, and never waits. Superseded version directories hold
content of removed records: the purge scrubs them (overwrite, fsync, unlink), and so is
every leftover of a killed publish before it is replaced (``docs/inventory.md``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb

from hotlist.published_files import write_version_files
from hotlist.scrub import scrub_tree, scrub_unlink
from hotlist.sources.landing import fsync_dir
from hotlist.sql import identifier
from hotlist.store import control as ctl
from hotlist.store import private_dir
from hotlist.store.spill import spill_dir

#: Columns a consumer receives: what a hit needs, not how the line was spelled.
PUBLISHED_COLUMNS = (
    "entry_id", "feed", "list", "record_id", "plate", "state", "record_date", "ori",
    "county", "plate_year", "plate_type", "vehicle_year", "make", "model", "style", "colour",
)  # fmt: skip
#: Change files older than this many versions are dropped (a consumer further behind
#: gets a full version).
KEEP_CHANGE_VERSIONS = 500


def read_current(root: Path) -> dict[str, Any] | None:
    """The manifest ``root/CURRENT.json`` names, or None before the first publish."""
    try:
        current: dict[str, Any] = json.loads((root / "CURRENT.json").read_text())
        return current
    except FileNotFoundError:
        return None


def _scrub_dir(path: Path) -> None:
    """Scrub a version directory (or a leftover file of that name) before it is replaced."""
    if path.is_dir() and not path.is_symlink():
        scrub_tree(path)
    elif path.exists() or path.is_symlink():
        scrub_unlink(path)


def _fsync_tree(path: Path) -> None:
    for file in path.iterdir():
        with open(file, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(path)


def publish(
    con: duckdb.DuckDBPyConnection, data_dir: Path, published_root: Path, state: dict[str, Any]
) -> int:
    """Publish the store's (``data_dir``) current hotlist version under ``published_root``
    if it is not published there yet; return it."""
    root = private_dir(published_root)
    current = ctl.current_versions(con, data_dir)
    version = max((v.version for v in current.values()), default=0)
    published = read_current(root)
    if version == 0 or (published and published["version"] == version):
        return version
    changes = private_dir(root / "changes")
    since = published["version"] if published else 0
    for v in range(max(since + 1, version - KEEP_CHANGE_VERSIONS + 1), version + 1):
        changed = con.sql("SELECT entry_id, op FROM changes WHERE version = ?", params=[v]).pl()
        target = changes / f"v{v:09d}.parquet"
        changed.write_parquet(target.with_suffix(".tmp"))
        os.replace(target.with_suffix(".tmp"), target)
    tmp = root / f"v{version:09d}.tmp"
    _scrub_dir(tmp)
    private_dir(tmp)
    # Spill files (a sort bigger than memory) go where the purge scrubs, not the CWD. The
    # ORDER BY below is total (entry ids are unique), so the scan need not keep the
    # tables' order for it.
    reader = duckdb.connect(
        config={
            "temp_directory": str(private_dir(spill_dir(data_dir))),
            "preserve_insertion_order": False,
        }
    )
    try:
        parts = []
        columns = ", ".join(identifier(c) for c in PUBLISHED_COLUMNS)
        for i, feed_version in enumerate(sorted(current.values(), key=lambda f: f.feed)):
            reader.execute(
                f"ATTACH ? AS {identifier(f'f{i}')} (READ_ONLY)", [str(feed_version.content_file)]
            )
            parts.append(f"SELECT {columns} FROM {identifier(f'f{i}')}.entries")  # noqa: S608 (quoted identifiers and constant fragments; values bound)
        union = " UNION ALL ".join(parts)
        entries, files = write_version_files(
            reader, f"{union} ORDER BY plate, state, entry_id", tmp
        )
    finally:
        reader.close()
    manifest = {
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "entries": int(entries),
        "feeds": {f: {"version": v.version, "entries": v.entries} for f, v in current.items()},
        "files": files,
        "freshness": {
            feed: {"applied_at": info.get("applied_at"), "extract_time": info.get("extract_time")}
            for feed, info in state.get("feeds", {}).items()
        },
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for f in tmp.iterdir():
        f.chmod(0o600)
    _fsync_tree(tmp)
    final = root / f"v{version:09d}"
    _scrub_dir(final)
    os.replace(tmp, final)
    pointer = root / "CURRENT.json.tmp"
    pointer.write_text(json.dumps({**manifest, "dir": final.name}, indent=2))
    pointer.chmod(0o600)
    with open(pointer, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(pointer, root / "CURRENT.json")
    fsync_dir(root)
    for old in sorted(changes.glob("v*.parquet")):
        if int(old.stem[1:]) <= version - KEEP_CHANGE_VERSIONS:
            old.unlink()
    return version


#: A version directory (``v000000042``) or one being written (``v000000042.tmp``): the
#: only directories of ``published_dir`` the purge scrubs, whatever else shares it.
VERSION_DIR = re.compile(r"v\d{9,}(\.tmp)?")


def superseded_versions(root: Path) -> list[Path]:
    """Published version directories under ``root`` (and leftovers) other than the current one."""
    if not root.exists():
        return []
    current = read_current(root)
    keep = current["dir"] if current else None
    return sorted(
        p for p in root.iterdir()
        if p.is_dir() and VERSION_DIR.fullmatch(p.name) and p.name != keep
    )  # fmt: skip
