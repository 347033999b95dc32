"""The next version's content file: written fresh beside the current one, checked by the
guards, then sealed (fsynced, made private, renamed into place) or scrubbed.

Steps: stream the snapshot's entries (:mod:`hotlist.store.stream`) -> drop duplicate
identities (:mod:`hotlist.store.dedupe`) -> diff against the current file
(:mod:`hotlist.store.diff`) -> guards (:mod:`hotlist.store.guards`) -> the tables the
next version needs to copy an unchanged line -> seal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import polars as pl

from hotlist.keyed import LineKeyer, entry_id
from hotlist.parse import Snapshot
from hotlist.scrub import checkpoint_scrubbing_wal
from hotlist.store import diff, private_dir
from hotlist.store.chunks import EntryKeys
from hotlist.store.content import connect_writer, discard, seal
from hotlist.store.dedupe import drop_duplicates
from hotlist.store.stream import Staged, write_entries

#: Called with what was written and the delta before the file is sealed; raises to refuse.
Check = Callable[[Staged, diff.Delta], None]


def write_content_file(
    path: Path,
    data_dir: Path,
    previous: Path | None,
    snapshot: Snapshot,
    identity: list[str],
    check: Check,
    suppressed: list[str],
) -> tuple[Staged, diff.Delta]:
    """Write the next version of the snapshot's feed as ``path``; ``previous`` is the
    current version's file (None for the feed's first). Whatever fails, ``path`` does not
    exist afterwards and nothing of the attempt is left on disk."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    discard(tmp)
    writer = connect_writer(tmp, data_dir)
    try:
        keys = EntryKeys(entry_id(data_dir, snapshot.feed, identity), LineKeyer(data_dir))
        staged = write_entries(writer, snapshot, keys, suppressed, previous)
        writer, dupes = drop_duplicates(writer, tmp, data_dir)
        issues = pl.concat([staged.issues, dupes]).sort("line_no", "field", "rule")
        staged = dataclasses.replace(staged, issues=issues)
        if previous is None:
            delta = diff.first_version(writer)
        else:
            writer.execute("ATTACH ? AS prev (READ_ONLY)", [str(previous)])
            delta = diff.against_previous(writer, staged.quarantine, identity, staged.parsed)
            writer.execute("DETACH prev")
        [count] = writer.execute("SELECT count(*) FROM entries").fetchall()
        delta = dataclasses.replace(delta, entries=int(count[0]))
        check(staged, delta)
        writer.register("_quarantine", staged.quarantine.to_arrow())
        writer.execute("CREATE TABLE quarantine AS SELECT * FROM _quarantine")
        # What the next version needs to copy an unchanged line instead of parsing it (the
        # line keys, the ``warnings`` table: :func:`write_entries` wrote them).
        writer.execute("CREATE TABLE parser AS SELECT ? AS fingerprint", [snapshot.parser])
        checkpoint_scrubbing_wal(writer, tmp)
    except BaseException:
        writer.close()
        discard(tmp)
        raise
    writer.close()
    seal(tmp, path)
    return staged, delta
