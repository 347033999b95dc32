"""Apply one snapshot file to its feed: whole or not at all.

Steps, each safe to be killed after: parse the file chunk by chunk, streaming each
chunk's entries into a fresh content file (a line the current file holds unchanged, parsed
by the same parser, is copied from it instead) -> compare with the current file (added,
changed, removed; entries a quarantined row still names are carried forward) -> guards
-> one control transaction (version, change log, tombstones, file event) -> state.json.
Until the control transaction commits the previous version is current; afterwards the
new one is, and a file no version refers to is deleted by the next writer
(:func:`recover`). The superseded file is erased by the purge (:mod:`hotlist.purge`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
from pandera.errors import SchemaErrors

from contracts.models import HotlistEntry
from hotlist.config import FeedGuards
from hotlist.faults import crash_point
from hotlist.keyed import LINE_KEY_COLUMNS, LineKeyer, PlateHasher, entry_id
from hotlist.parse import (
    ISSUE_SCHEMA,
    FileRejected,
    ParsedFile,
    Snapshot,
    duplicate_issues,
    sum_excluded,
)
from hotlist.sources import LandedFile
from hotlist.store import FEEDS, content_path, feed_dir, private_dir
from hotlist.store import control as ctl
from hotlist.store.content import connect_writer, remove_unreferenced, seal
from hotlist.store.diff import CONTENT_COLUMNS, carried_ids
from hotlist.store.state import write_state


@dataclass(frozen=True)
class ApplyResult:
    """What applying a file did, in counts and ids (never content)."""

    feed: str
    name: str
    sha256: str
    verdict: str  # applied | duplicate
    version: int
    entries: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    carried: int = 0
    quarantined: int = 0
    warnings: int = 0
    reused: int = 0  # lines unchanged since the previous version: copied, not parsed


def recover(con: duckdb.DuckDBPyConnection, data_dir: Path) -> list[Path]:
    """Bring state.json up to the committed versions, then delete content files no version
    refers to: leftovers of a killed run. Superseded versions stay until the purge has
    verified and erased what they hold of removed records."""
    write_state(con, data_dir)
    keep = set(ctl.live_content_files(con, data_dir))
    removed: list[Path] = []
    for feed in FEEDS:
        removed += remove_unreferenced(feed_dir(data_dir, feed), keep)
    return removed


@dataclass(frozen=True)
class _Staged:
    """What streaming a snapshot into a new content file produced."""

    quarantine: pl.DataFrame
    issues: pl.DataFrame
    excluded: dict[str, int]
    reused: int = 0  # lines whose entry was copied from the current file, not parsed again
    parsed: pl.Series | None = None  # the lines parsed, when not all were

    @property
    def row_errors(self) -> int:
        return self.quarantine.height

    @property
    def warnings(self) -> int:
        return int((self.issues["severity"] == "warning").sum())


class EntryContractBroken(Exception):
    """Rows that passed the row contracts broke the entry contract: a defect, not bad input."""


@dataclass(frozen=True)
class _Keys:
    """What identifies an entry (its id, from the identity) and its line (the line key)."""

    entry_id: pl.Expr
    line: LineKeyer


def _validated_chunk(snapshot: Snapshot, index: int, keys: _Keys) -> ParsedFile:
    """Chunk ``index`` of the snapshot, its entries checked against the entry contract, led
    by their entry id and followed by their line key."""
    chunk = snapshot.chunk(index)
    try:
        HotlistEntry.validate(chunk.entries, lazy=True)
    except SchemaErrors as exc:
        # pandera's own message quotes the failing values: record content. Name the
        # columns and checks only.
        cases = exc.failure_cases.select("column", "check").unique().rows()
        raise EntryContractBroken(
            f"{snapshot.name}: {exc.failure_cases.height} entries break the hotlist entry"
            f" contract: {sorted(f'{c}: {k}' for c, k in cases)}"
        ) from None
    entries = chunk.entries.select(keys.entry_id, pl.all()).join(
        keys.line(snapshot.chunk_lines(index)), on="line_no", how="left"
    )
    return dataclasses.replace(chunk, entries=entries)


#: Chunks parsed at once beside the writer. A chunk's polars and pandera work keeps
#: little more than one core busy; two at once fill both (measured on 2M lines).
PARSE_WORKERS = 2


class _ParsedInOrder:
    """The snapshot's validated chunks in file order, parsed on :data:`PARSE_WORKERS`
    threads at most that many ahead of the consumer (memory stays bounded). Parsing starts
    when it is made, so the writer can do other work meanwhile; :meth:`close` stops it."""

    def __init__(self, snapshot: Snapshot, keys: _Keys) -> None:
        self._snapshot, self._keys = snapshot, keys
        self._indexes = iter(range(snapshot.chunk_count))
        self._pool = ThreadPoolExecutor(max_workers=PARSE_WORKERS, thread_name_prefix="parse")
        self._pending = deque(
            self._submit(i) for i in itertools.islice(self._indexes, PARSE_WORKERS)
        )

    def _submit(self, index: int) -> Future[ParsedFile]:
        return self._pool.submit(_validated_chunk, self._snapshot, index, self._keys)

    def __iter__(self) -> Iterator[ParsedFile]:
        return self

    def __next__(self) -> ParsedFile:
        if not self._pending:
            raise StopIteration
        parsed = self._pending.popleft().result()
        if (following := next(self._indexes, None)) is not None:
            self._pending.append(self._submit(following))
        return parsed

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _suppress(chunk: ParsedFile, suppressed: list[str]) -> ParsedFile:
    """Drop lines of manually purged records (entries and quarantined lines alike)."""
    if not suppressed:
        return chunk
    ids = pl.Series(suppressed).implode()
    entries = chunk.entries.filter(~pl.col("record_id").is_in(ids).fill_null(False))
    quarantine = chunk.quarantine.filter(
        ~pl.col("raw_line").str.contains_any(suppressed).fill_null(False)
    )
    dropped = chunk.entries.height - entries.height + chunk.quarantine.height - quarantine.height
    excluded = chunk.excluded | {"suppressed_manual_purge": dropped}
    return dataclasses.replace(chunk, entries=entries, quarantine=quarantine, excluded=excluded)


#: High-entropy identifiers are stored uncompressed: DuckDB's string compression saved a
#: quarter of their bytes (16 MB of a 65 MB file of 1.68M entries) for 0.5-0.7 CPU-seconds
#: of the write (measured on the benchmark's extract).
UNCOMPRESSED_COLUMNS = ("record_id", "plate")


_SAME_LINE = "p.line_key_hi = k.line_key_hi AND p.line_key_lo = k.line_key_lo"


def _unchanged_lines(
    con: duckdb.DuckDBPyConnection, snapshot: Snapshot, keys: _Keys, previous: Path
) -> pl.Series | None:
    """Attach ``previous`` as ``prev`` and register the snapshot's line keys as
    ``_line_keys``; return the line numbers ``prev`` does not hold as entries, the lines
    left to parse. None (nothing attached) when ``prev`` was parsed by another parser
    (:attr:`Snapshot.parser`) or holds no line keys: then every line is parsed."""
    con.execute("ATTACH ? AS prev (READ_ONLY)", [str(previous)])
    try:
        [(parser,)] = con.sql("SELECT fingerprint FROM prev.parser").fetchall()
    except duckdb.CatalogException:
        parser = None
    if parser != snapshot.parser:
        con.execute("DETACH prev")
        return None
    with ThreadPoolExecutor(max_workers=PARSE_WORKERS, thread_name_prefix="line-keys") as pool:
        indexes = range(snapshot.chunk_count)
        line_keys = pl.concat(pool.map(lambda i: keys.line(snapshot.chunk_lines(i)), indexes))
    con.register("_line_keys", line_keys.to_arrow())
    fresh: pl.Series = con.sql(
        f"SELECT line_no FROM _line_keys k ANTI JOIN prev.entries p ON {_SAME_LINE}"
    ).pl()["line_no"]
    return fresh


def _copy_unchanged(
    con: duckdb.DuckDBPyConnection, suppressed: list[str]
) -> tuple[int, int, pl.DataFrame]:
    """Copy into ``entries`` the entries ``prev`` holds for lines of the snapshot, at their
    new line numbers, but not those of manually purged records. Return how many were
    copied and suppressed, and the lines' warnings (as ``prev`` recorded them)."""
    source = f"FROM prev.entries p JOIN _line_keys k ON {_SAME_LINE}"
    kept, dropped = "", 0
    if suppressed:
        con.register("_suppressed", pl.DataFrame({"record_id": suppressed}).to_arrow())
        purged = "p.record_id IN (SELECT record_id FROM _suppressed)"
        [(dropped,)] = con.execute(f"SELECT count(*) {source} WHERE {purged}").fetchall()
        kept = f" WHERE NOT coalesce({purged}, false)"
    [(copied,)] = con.execute(
        f"INSERT INTO entries BY NAME SELECT p.* REPLACE (k.line_no AS line_no) {source}{kept}"
    ).fetchall()
    warnings = con.sql(
        "SELECT k.line_no, w.field, w.rule, 'warning' AS severity FROM prev.warnings w"
        f" JOIN prev.entries p ON p.line_no = w.line_no JOIN _line_keys k ON {_SAME_LINE}"
    ).pl()
    if suppressed:
        con.unregister("_suppressed")
    return int(copied), int(dropped), warnings.cast(ISSUE_SCHEMA)


def _table_definition(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """The ``entries`` columns, named and typed as ``relation``'s."""
    columns = con.sql(f"DESCRIBE {relation}").fetchall()
    return ", ".join(
        f'"{name}" {kind}'
        + (" USING COMPRESSION uncompressed" if name in UNCOMPRESSED_COLUMNS else "")
        for name, kind, *_ in columns
    )


#: How parsed entries are written: a raw value equal to its normalized one is kept as null.
_STORED = (
    "SELECT * REPLACE (nullif(plate_raw, plate) AS plate_raw,"
    " nullif(state_raw, state) AS state_raw) FROM {}"
)


def _stage(
    con: duckdb.DuckDBPyConnection,
    snapshot: Snapshot,
    keys: _Keys,
    suppressed: list[str],
    previous: Path | None = None,
) -> _Staged:
    """Parse the snapshot chunk by chunk into ``entries``; memory stays bounded by a chunk.

    One ``INSERT ... SELECT`` reads the chunks' entries as an Arrow stream: DuckDB fills
    whole row groups and compresses them on both cores while the next chunks are parsed
    (:class:`_ParsedInOrder`). Measured on 2M lines: 0.7 s less than an insert per chunk,
    whose partial row groups the next insert rewrites.

    A line that ``previous`` (the current content file) holds as an entry, parsed by the
    same parser, is not parsed again: its entry and warnings are copied from there
    (:func:`_unchanged_lines`), while the other lines are parsed. Parsing a line depends
    on nothing but the line and the parser, so the copy is what a parse would give.
    """
    fresh = _unchanged_lines(con, snapshot, keys, previous) if previous else None
    chunks = _ParsedInOrder(snapshot if fresh is None else snapshot.restricted(fresh), keys)
    quarantine: list[pl.DataFrame] = []
    issues: list[pl.DataFrame] = []
    excluded: list[dict[str, int]] = []
    failed: list[BaseException] = []

    def entry_tables() -> Generator[pa.Table, None, None]:
        try:
            for chunk in chunks:
                chunk = _suppress(chunk, suppressed)
                quarantine.append(chunk.quarantine)
                issues.append(chunk.issues)
                excluded.append(chunk.excluded)
                yield chunk.entries.to_arrow()
        except BaseException as exc:  # DuckDB reports it as a stream error: keep the original
            failed.append(exc)
            raise

    tables = entry_tables()
    reused, purged, reused_warnings = 0, 0, pl.DataFrame(schema=ISSUE_SCHEMA)
    begun = False  # one transaction: no table, or the table and all its rows
    try:
        if fresh is not None:  # the same parser wrote ``prev``: its columns are these
            con.execute("BEGIN TRANSACTION")
            begun = True
            con.execute(f"CREATE TABLE entries ({_table_definition(con, 'prev.entries')})")
            reused, purged, reused_warnings = _copy_unchanged(con, suppressed)
        head = [next(tables)]  # a snapshot has at least one chunk, perhaps of no entries
        schema = head[0].schema

        def batches() -> Iterator[pa.RecordBatch]:
            # No reference outlives its chunk (the first leaves ``head`` as it is read).
            table: pa.Table | None = head.pop()
            while table is not None:
                yield from (
                    table if table.schema.equals(schema) else table.cast(schema)
                ).to_batches()
                table = next(tables, None)

        if fresh is None:
            con.register("_entries_shape", schema.empty_table())
            definition = _table_definition(con, f"({_STORED.format('_entries_shape')})")
            con.unregister("_entries_shape")
            con.execute("BEGIN TRANSACTION")
            begun = True
            con.execute(f"CREATE TABLE entries ({definition})")
        con.register("_entries", pa.RecordBatchReader.from_batches(schema, batches()))
        try:
            con.execute(f"INSERT INTO entries BY NAME {_STORED.format('_entries')}")
        finally:
            con.unregister("_entries")
        con.execute("COMMIT")
        begun = False
    except BaseException as exc:
        if begun:
            con.execute("ROLLBACK")
        if failed and isinstance(exc, duckdb.Error):
            raise failed[0] from None
        raise
    finally:
        tables.close()
        chunks.close()  # stops the parse threads when the write ended early
        if fresh is not None:
            con.unregister("_line_keys")
            con.execute("DETACH prev")
    if purged:
        excluded.append({"suppressed_manual_purge": purged})
    return _Staged(
        quarantine=pl.concat(quarantine),
        issues=pl.concat([*issues, reused_warnings]),
        excluded=sum_excluded(excluded),
        reused=reused,
        parsed=fresh,
    )


def _drop_duplicates(
    con: duckdb.DuckDBPyConnection, tmp: Path, data_dir: Path
) -> tuple[duckdb.DuckDBPyConnection, pl.DataFrame]:
    """Keep the first line of each identity; report the others. Rare, so the rewrite runs
    only when needed, and into a fresh file: deleting rows in place leaves them in it."""
    dupes = con.sql(
        "SELECT line_no FROM entries QUALIFY row_number() OVER"
        " (PARTITION BY entry_id ORDER BY line_no) > 1"
    ).pl()
    if dupes.height == 0:
        return con, duplicate_issues(dupes)
    con.close()
    first = tmp.with_name(tmp.name + ".dupes")
    os.replace(tmp, first)
    con = connect_writer(tmp, data_dir)
    con.execute("ATTACH ? AS dupes (READ_ONLY)", [str(first)])
    con.execute(
        "CREATE TABLE entries AS SELECT * FROM dupes.entries QUALIFY row_number() OVER"
        " (PARTITION BY entry_id ORDER BY line_no) = 1"
    )
    con.execute("DETACH dupes")
    first.unlink()
    return con, duplicate_issues(dupes)


_GONE_SCHEMA = {
    "entry_id": pl.Int64,
    "list": pl.String,
    "record_id": pl.String,
    "plate": pl.String,
    "state": pl.String,
}


@dataclass(frozen=True)
class _Delta:
    added: pl.Series
    changed: pl.Series
    removed: pl.DataFrame  # entry_id, list, record_id, plate, state: for the tombstones
    carried: pl.Series
    previous_count: int
    entries: int = 0


def _delta(
    con: duckdb.DuckDBPyConnection,
    quarantine: pl.DataFrame,
    identity: list[str],
    parsed: pl.Series | None = None,
) -> _Delta:
    """Compare ``entries`` with the attached ``prev``; carry forward what a quarantined row
    still names, and say what was added, changed and removed.

    The identity columns are not compared: the entry id is derived from them, so rows of
    one id agree on them. When only the lines ``parsed`` were parsed (the others' entries
    are copies of ``prev``'s), only their entries can be added or changed: the comparison
    joins those few, and finds what was removed by entry id alone.
    """
    differs = " OR ".join(
        f"n.{c} IS DISTINCT FROM p.{c}" for c in CONTENT_COLUMNS if c not in identity
    )
    if parsed is None:
        delta = con.sql(
            "SELECT coalesce(n.entry_id, p.entry_id) AS entry_id,"
            " CASE WHEN p.entry_id IS NULL THEN 'add' WHEN n.entry_id IS NULL THEN 'remove'"
            " ELSE 'change' END AS op, p.list, p.record_id, p.plate, p.state"
            " FROM entries n FULL OUTER JOIN prev.entries p ON n.entry_id = p.entry_id"
            f" WHERE n.entry_id IS NULL OR p.entry_id IS NULL OR {differs} ORDER BY 1"
        ).pl()
    else:
        con.register("_parsed", pl.DataFrame({"line_no": parsed}).to_arrow())
        delta = con.sql(
            "SELECT n.entry_id, CASE WHEN p.entry_id IS NULL THEN 'add' ELSE 'change' END AS op,"
            " p.list, p.record_id, p.plate, p.state"
            " FROM (SELECT * FROM entries SEMI JOIN _parsed USING (line_no)) n"
            " LEFT JOIN prev.entries p ON n.entry_id = p.entry_id"
            f" WHERE p.entry_id IS NULL OR {differs}"
            " UNION ALL SELECT p.entry_id, 'remove', p.list, p.record_id, p.plate, p.state"
            " FROM prev.entries p ANTI JOIN entries n ON n.entry_id = p.entry_id ORDER BY 1"
        ).pl()
        con.unregister("_parsed")
    missing = delta.filter(pl.col("op") == "remove").drop("op")
    carried = carried_ids(missing, quarantine)
    if carried.len():
        con.register("_carried", pl.DataFrame({"entry_id": carried}).to_arrow())
        # A carried entry stands for no line of this file: no line number, no line key.
        unlined = ", ".join(f"'{c}'" for c in ("line_no", *LINE_KEY_COLUMNS))
        con.execute(
            f"INSERT INTO entries BY NAME SELECT COLUMNS(lambda c: c NOT IN ({unlined}))"
            " FROM prev.entries WHERE entry_id IN (SELECT entry_id FROM _carried)"
        )
    [count] = con.execute("SELECT count(*) FROM prev.entries").fetchall()
    return _Delta(
        added=delta.filter(pl.col("op") == "add")["entry_id"],
        changed=delta.filter(pl.col("op") == "change")["entry_id"],
        removed=missing.filter(~pl.col("entry_id").is_in(carried.implode())),
        carried=carried,
        previous_count=int(count[0]),
    )


def _check_guards(
    snapshot: Snapshot,
    staged: _Staged,
    delta: _Delta,
    sha256: str,
    guards: FeedGuards,
    approved_sha256: str | None,
) -> None:
    candidates = max(snapshot.record_lines - sum(staged.excluded.values()), 1)
    share = staged.row_errors / candidates
    if share > guards.max_row_error_share:
        raise FileRejected(
            "row-error-share",
            f"{snapshot.name}: {staged.row_errors} of {candidates} rows have errors"
            f" ({share:.1%} > {guards.max_row_error_share:.1%} allowed); the previous snapshot"
            " stays; see `hotlist status` and the file's issues",
        )
    removed, previous = delta.removed.height, delta.previous_count
    removal_share = removed / previous if previous else 0.0
    if removal_share > guards.max_removal_share and approved_sha256 != sha256:
        raise FileRejected(
            "mass-removal",
            f"{snapshot.name}: would remove {removed} of {previous} entries"
            f" ({removal_share:.1%} > {guards.max_removal_share:.1%} allowed). If upstream"
            f" really removed them, approve this exact file: --approve-mass-removal {sha256}",
        )


def _write_content_file(
    path: Path,
    data_dir: Path,
    previous: Path | None,
    snapshot: Snapshot,
    identity: list[str],
    check: _Guard,
    suppressed: list[str],
) -> tuple[_Staged, _Delta]:
    """Write the next version as a fresh file, fsync it and rename it into place."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    writer = connect_writer(tmp, data_dir)
    try:
        keys = _Keys(entry_id(data_dir, snapshot.feed, identity), LineKeyer(data_dir))
        staged = _stage(writer, snapshot, keys, suppressed, previous)
        warnings = staged.issues.filter(pl.col("severity") == "warning")
        writer, dupes = _drop_duplicates(writer, tmp, data_dir)
        issues = pl.concat([staged.issues, dupes]).sort("line_no", "field", "rule")
        staged = dataclasses.replace(staged, issues=issues)
        if previous is None:
            ids = writer.sql("SELECT entry_id FROM entries ORDER BY 1").pl()["entry_id"]
            delta = _Delta(ids, ids.clear(), pl.DataFrame(schema=_GONE_SCHEMA), ids.clear(), 0)
        else:
            writer.execute("ATTACH ? AS prev (READ_ONLY)", [str(previous)])
            delta = _delta(writer, staged.quarantine, identity, staged.parsed)
            writer.execute("DETACH prev")
        [count] = writer.execute("SELECT count(*) FROM entries").fetchall()
        delta = dataclasses.replace(delta, entries=int(count[0]))
        try:
            check(staged, delta)
        except FileRejected as exc:
            exc.issues = staged.issues
            raise
        writer.register("_quarantine", staged.quarantine.to_arrow())
        writer.execute("CREATE TABLE quarantine AS SELECT * FROM _quarantine")
        # What the next version needs to copy an unchanged line instead of parsing it.
        writer.register("_warnings", warnings.select("line_no", "field", "rule").to_arrow())
        writer.execute("CREATE TABLE warnings AS SELECT * FROM _warnings")
        writer.execute("CREATE TABLE parser AS SELECT ? AS fingerprint", [snapshot.parser])
        writer.execute("CHECKPOINT")
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    seal(tmp, path)
    return staged, delta


class _Guard:
    def __init__(self, snapshot: Snapshot, sha256: str, guards: FeedGuards, approved: str | None):
        self.args = (snapshot, sha256, guards, approved)

    def __call__(self, staged: _Staged, delta: _Delta) -> None:
        snapshot, sha256, guards, approved = self.args
        _check_guards(snapshot, staged, delta, sha256, guards, approved)


def apply_snapshot(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    landed: LandedFile,
    snapshot: Snapshot,
    identity: list[str],
    guards: FeedGuards,
    approved_sha256: str | None,
    now: dt.datetime,
) -> ApplyResult:
    """Apply ``snapshot`` (the content of ``landed``) as the next version of its feed.

    Raises :class:`FileRejected` for a replayed or older file and for the guards; the
    caller records the rejection. Call with the writer lock held.
    """
    feed = landed.feed
    done_at = ctl.applied_before(con, feed, landed.sha256)
    if done_at is not None:
        ctl.record_event(
            con,
            ctl.FileEvent(
                feed, landed.name, "duplicate", landed.sha256, landed.size, landed.mtime,
                snapshot.extract_time, version=done_at,
                message=f"identical to the file applied at version {done_at}",
            ),
            now,
        )  # fmt: skip
        return ApplyResult(feed, landed.name, landed.sha256, "duplicate", done_at)
    last = ctl.last_extract_time(con, feed)
    if last is not None and snapshot.extract_time <= last:
        raise FileRejected(
            "replay",
            f"{snapshot.name}: extract time {snapshot.extract_time.isoformat()} is not newer than"
            f" the applied snapshot's {last.isoformat()}: a replayed or older file",
        )
    current = ctl.current_versions(con, data_dir).get(feed)
    version = ctl.next_value(con, "version")
    path = content_path(data_dir, feed, version)
    staged, delta = _write_content_file(
        path,
        data_dir,
        current.content_file if current else None,
        snapshot,
        identity,
        _Guard(snapshot, landed.sha256, guards, approved_sha256),
        ctl.active_suppressions(con) if "record_id" in identity else [],
    )
    crash_point("after-content-file")
    hasher = PlateHasher(data_dir)
    tombstones = delta.removed.select(
        pl.col("entry_id"),
        pl.lit(feed).alias("feed"),
        pl.col("list"),
        pl.col("record_id"),
        pl.struct("plate", "state")
        .map_elements(lambda s: hasher(s["plate"], s["state"]), return_dtype=pl.String)
        .alias("keyed_hash"),
        pl.lit(f"absent from snapshot {landed.sha256[:12]} ({landed.name})").alias("reason"),
    )
    changes = pl.concat(
        pl.DataFrame({"entry_id": ids.cast(pl.Int64)}).with_columns(pl.lit(op).alias("op"))
        for op, ids in (
            ("add", delta.added),
            ("change", delta.changed),
            ("remove", delta.removed["entry_id"]),
        )
    )
    entries = delta.entries
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO versions VALUES (?, ?, 'ingest', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [
                version, feed, now, str(path.relative_to(data_dir)), landed.sha256,
                snapshot.extract_time, entries, delta.added.len(), delta.changed.len(),
                delta.removed.height, staged.quarantine.height, delta.carried.len(),
            ],
        )  # fmt: skip
        con.register("_changes", changes)
        con.execute("INSERT INTO changes SELECT ?, ?, entry_id, op FROM _changes", [version, feed])
        con.register("_tombstones", tombstones)
        con.execute(
            "INSERT INTO tombstones SELECT entry_id, feed, list, record_id, keyed_hash, reason,"
            " ?, ?, NULL, NULL FROM _tombstones",
            [version, now],
        )
        ctl.record_event(
            con,
            ctl.FileEvent(
                feed, landed.name, "applied", landed.sha256, landed.size, landed.mtime,
                snapshot.extract_time, version=version, record_lines=snapshot.record_lines,
                row_errors=staged.row_errors, warnings=staged.warnings, excluded=staged.excluded,
            ),
            now,
            staged.issues,
        )  # fmt: skip
        ctl.set_counter(con, "version", version)
        crash_point("before-commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        path.unlink(missing_ok=True)
        raise
    finally:
        for view in ("_changes", "_tombstones"):
            con.unregister(view)
    crash_point("after-commit")
    write_state(con, data_dir)  # readers move to the new file; the purge erases the old one
    crash_point("after-state")
    return ApplyResult(
        feed, landed.name, landed.sha256, "applied", version, entries=entries,
        added=delta.added.len(), changed=delta.changed.len(), removed=delta.removed.height,
        carried=delta.carried.len(), quarantined=staged.quarantine.height,
        warnings=staged.warnings, reused=staged.reused,
    )  # fmt: skip
