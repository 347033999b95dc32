"""What a killed run left for the next writer to finish: a version not yet published, or
removals not yet purged.

A run killed after an ingest's commit leaves the store a version ahead of what patrol
systems pull, with tombstones the purge has not yet erased. The next run sees nothing new
upstream; without this check it would neither publish nor purge, and the removals would
wait for the next sweep. Every ingest (a flow run, or ``hotlist ingest`` in-process) asks
:func:`pending_work` after it fetched, and runs the purge when it finds anything (a purge
publishes, then erases); a purge always finishes whatever is pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from hotlist.publish import read_current
from hotlist.store import control as ctl
from hotlist.store import control_path


@dataclass(frozen=True)
class PendingWork:
    """Counts of what is left to do; false when nothing is."""

    store_version: int  # the newest version of any feed
    published_version: int  # the version patrol systems pull (0: none published yet)
    unpurged: int  # tombstones whose content the purge has not yet erased and verified
    superseded: int  # content files of superseded versions not yet erased

    @property
    def unpublished(self) -> bool:
        return self.store_version > self.published_version

    def __bool__(self) -> bool:
        return self.unpublished or self.unpurged > 0 or self.superseded > 0

    def describe(self) -> str:
        """What is pending, in counts (never content)."""
        parts = []
        if self.unpublished:
            parts.append(
                f"version {self.store_version} is not published (patrol systems pull"
                f" {self.published_version or 'nothing'})"
            )
        if self.unpurged:
            parts.append(f"{self.unpurged} removed records await the purge")
        if self.superseded:
            parts.append(f"{self.superseded} superseded content files await erasure")
        return "; ".join(parts) or "nothing pending"


def pending_work(
    data_dir: Path, published_root: Path, con: duckdb.DuckDBPyConnection | None = None
) -> PendingWork:
    """What is left to do in ``data_dir``'s store, against the version published under
    ``published_root``; ``con`` is the caller's control connection, if it has one open
    (a writer's: call with the writer lock held)."""
    if con is None:
        if not control_path(data_dir).is_file():
            return PendingWork(0, 0, 0, 0)
        with ctl.read_only(data_dir) as reader:
            return pending_work(data_dir, published_root, reader)
    versions = ctl.current_versions(con, data_dir)
    live = ctl.live_content_files(con, data_dir)
    [(unpurged,)] = con.execute(
        "SELECT count(*) FROM tombstones WHERE purged_at IS NULL"
    ).fetchall()
    published = read_current(published_root)
    return PendingWork(
        store_version=max((v.version for v in versions.values()), default=0),
        published_version=int(published["version"]) if published else 0,
        unpurged=int(unpurged),
        superseded=sum(1 for is_current in live.values() if not is_current),
    )
