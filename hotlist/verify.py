"""Forensic verification: has every removed record vanished from every local copy?

Independent of how the purge did its work, it checks what is on disk:

* every DuckDB file: no WAL beside it, physical rows = logical rows in every table
  (``pragma_storage_info``), zero free blocks (``PRAGMA database_size``): a file that had
  rows ``DELETE``d still holds them and fails here;
* no tombstoned entry id in any content file, unless upstream added it again later;
* no leftovers where content rests only in passing (landing, spill, temporary files);
* the content of records awaiting purge (``markers``: their plates) in no table of any
  DuckDB file, no Parquet or CSV export, and no byte of any other file under
  ``data_dir`` and ``PREFECT_HOME`` (Prefect's database and logs included).

Plates shorter than :data:`MIN_SCAN_LEN` are matched in tables only: in raw bytes they
would match by chance.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from hotlist.store import control_path

MIN_SCAN_LEN = 5
#: Files this module reads as opaque bytes are scanned in blocks of this size (with overlap).
BLOCK = 16 << 20
#: Columns that hold free text (a whole upstream line): searched for markers inside.
FREE_TEXT = frozenset({"raw_line"})
#: Where content may rest only while a writer works; anything left there is a finding.
TRANSIENT_DIRS = ("landing", "store/spill")


@dataclass(frozen=True)
class Finding:
    place: str
    problem: str


@dataclass
class Verification:
    ok: bool = True
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    duckdb_files: int = 0
    markers: int = 0

    def add(self, place: Path | str, problem: str) -> None:
        self.ok = False
        self.findings.append(Finding(str(place), problem))

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "findings": [asdict(f) for f in self.findings]}

    def summary(self) -> str:
        verdict = "PASS" if self.ok else f"FAIL ({len(self.findings)} findings)"
        return (
            f"{verdict}: {self.files} files ({self.bytes / 1e6:.1f} MB), {self.duckdb_files}"
            f" DuckDB files, {self.markers} records awaiting purge searched for"
        )


def _walk(root: Path) -> Iterator[Path]:
    if root.exists():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield path


def _string_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    return [
        (schema, table, column)
        for schema, table, column in con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns()"
            " WHERE data_type = 'VARCHAR' AND NOT internal"
        ).fetchall()
    ]


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return [
        (s, t)
        for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal"
        ).fetchall()
    ]


def check_duckdb_file(
    path: Path,
    con: duckdb.DuckDBPyConnection,
    markers: pl.Series,
    result: Verification,
    strict_blocks: bool = True,
) -> None:
    """Structure and content of one DuckDB file, opened (read-only) as ``con``."""
    result.duckdb_files += 1
    [size] = con.execute("PRAGMA database_size").fetchall()
    free_blocks = int(size[5])
    if free_blocks and strict_blocks:
        result.add(path, f"{free_blocks} free blocks: unzeroed space may hold deleted rows")
    for schema, table in _tables(con):
        name = f'"{schema}"."{table}"'
        [[logical]] = con.execute(f"SELECT count(*) FROM {name}").fetchall()
        [[physical]] = con.execute(
            "SELECT coalesce(sum(count), 0) FROM pragma_storage_info(?)"
            " WHERE column_id = 0 AND segment_type <> 'VALIDITY'",
            [f"{schema}.{table}" if schema != "main" else table],
        ).fetchall()
        if int(physical) != int(logical):
            result.add(
                f"{path}:{table}",
                f"{physical} physical rows but {logical} logical: deleted rows remain in the file",
            )
    if markers.len() == 0:
        return
    long_markers = markers.filter(markers.str.len_chars() >= MIN_SCAN_LEN).to_list()
    columns = _string_columns(con)
    con.register("_markers", pl.DataFrame({"m": markers}).to_arrow())
    try:
        _search_tables(path, con, columns, markers, long_markers, result)
    finally:
        con.unregister("_markers")


def _search_tables(
    path: Path,
    con: duckdb.DuckDBPyConnection,
    columns: list[tuple[str, str, str]],
    markers: pl.Series,
    long_markers: list[str],
    result: Verification,
) -> None:
    for schema, table, column in columns:
        name = f'"{schema}"."{table}"'
        if column in FREE_TEXT:  # small (quarantined lines): searched inside, in polars
            values = con.sql(f'SELECT DISTINCT "{column}" AS v FROM {name}').pl()
            found = values.select(_found(pl.col("v"), markers, long_markers, True)).item()
        else:  # whole values: a semi-join in DuckDB, in bounded memory
            [[found]] = con.execute(
                f'SELECT count(*) FROM {name} WHERE "{column}" IN (SELECT m FROM _markers)'
            ).fetchall()
        if found:
            result.add(
                f"{path}:{table}.{column}", f"{found} values hold content of a removed record"
            )


def _found(
    values: pl.Expr, markers: pl.Series, long_markers: list[str], free_text: bool
) -> pl.Expr:
    """How many values equal a marker; in free text (a raw line), also how many contain one.

    A field such as ``plate`` holds one value: ``7ABC123`` is no trace of a removed
    ``ABC12``, so structured fields are matched whole.
    """
    found = values.is_in(markers.implode()).sum()
    if free_text and long_markers:
        found = found + values.str.contains_any(long_markers).sum()
    return found


def scan_bytes(path: Path, markers: list[bytes], result: Verification) -> None:
    """Search a file's raw bytes (decompressed, for .gz) for any marker."""
    if not markers:
        return
    patterns = [m.decode("latin-1") for m in markers]
    overlap = max(len(m) for m in markers)
    opener = gzip.open if path.suffix == ".gz" else open
    tail = b""
    with opener(path, "rb") as fh:
        while block := fh.read(BLOCK):
            text = (tail + block).decode("latin-1")
            if pl.Series([text]).str.contains_any(patterns).item():
                result.add(path, "raw bytes hold content of a removed record")
                return
            tail = block[-overlap:]


def scan_table_file(path: Path, markers: pl.Series, result: Verification) -> None:
    """Parquet and CSV exports: every column searched as text, streamed (bounded memory:
    the published CSV of a 2M-line extract read whole took the purge past 1 GB)."""
    frame = (
        pl.scan_parquet(path)
        if path.suffix == ".parquet"
        else pl.scan_csv(path, infer_schema=False)
    )
    long_markers = markers.filter(markers.str.len_chars() >= MIN_SCAN_LEN).to_list()
    counts = [
        _found(
            pl.col(column).cast(pl.String, strict=False), markers, long_markers, column in FREE_TEXT
        ).alias(column)
        for column in frame.collect_schema().names()
    ]
    for column, found in (
        frame.select(counts).collect(engine="streaming").row(0, named=True).items()
    ):
        if found:
            result.add(f"{path}:{column}", f"{found} values hold content of a removed record")


def _gone_ids(control: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Tombstoned entry ids that upstream has not added again since."""
    gone: pl.DataFrame = control.sql(
        "SELECT t.entry_id, t.feed, t.purged_at IS NULL AS pending FROM tombstones t"
        " WHERE NOT EXISTS (SELECT 1 FROM changes c WHERE c.entry_id = t.entry_id"
        " AND c.feed = t.feed AND c.op = 'add' AND c.version > t.detected_version)"
    ).pl()
    return gone


def _check_entry_ids(path: Path, gone: pl.DataFrame, result: Verification) -> None:
    if gone.height == 0:
        return
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.register("_gone", gone.to_arrow())
        [[count]] = con.execute(
            "SELECT count(*) FROM entries WHERE entry_id IN (SELECT entry_id FROM _gone)"
        ).fetchall()
    finally:
        con.close()
    if count:
        result.add(path, f"{count} entries of removed records are still in this file")


def verify(
    data_dir: Path,
    prefect_home: Path | None,
    markers: list[str],
    control: duckdb.DuckDBPyConnection | None = None,
    pending_ok: bool = False,
    extra_roots: list[Path] | None = None,
) -> Verification:
    """Check every file under ``data_dir`` (and ``prefect_home``) as described above.

    ``control`` is the writer's open control connection, if the caller holds one (DuckDB
    refuses a read-only open of a file another connection writes). ``pending_ok`` is for
    the purge itself, which verifies before it marks its tombstones purged.
    """
    result = Verification(markers=len(markers))
    own = control is None and control_path(data_dir).exists()
    if own:
        control = duckdb.connect(str(control_path(data_dir)), read_only=True)
    try:
        gone = _gone_ids(control) if control is not None else pl.DataFrame()
    finally:
        if own and control is not None:
            control.close()
            control = None
    if gone.height and not pending_ok:
        for feed, count in gone.filter("pending").group_by("feed").len().iter_rows():
            result.add(f"feed {feed}", f"{count} removed records not purged yet")
    for path in _walk(data_dir / "store" / "feeds"):
        if path.suffix == ".duckdb":
            _check_entry_ids(path, gone, result)
    series = pl.Series("m", sorted(set(markers)), dtype=pl.String)
    raw_markers = [m.encode() for m in series.to_list() if len(m) >= MIN_SCAN_LEN]
    for rel in TRANSIENT_DIRS:
        for path in _walk(data_dir / rel):
            result.add(path, "leftover in a transient area (content must not rest here)")
    control_file = control_path(data_dir)
    roots = [data_dir, *([prefect_home] if prefect_home else []), *(extra_roots or [])]
    for root in roots:
        for path in _walk(root):
            result.files += 1
            result.bytes += path.stat().st_size
            name = path.name
            if name.endswith((".wal", ".tmp", ".part", ".dupes")):
                result.add(path, "leftover of an interrupted write")
                if name.endswith(".wal"):
                    continue
            if name.endswith(".duckdb"):
                if path == control_file and control is not None:
                    check_duckdb_file(path, control, series, result, strict_blocks=False)
                    continue
                try:
                    con = duckdb.connect(str(path), read_only=True)
                except duckdb.Error as exc:
                    result.add(path, f"cannot be opened for verification ({type(exc).__name__})")
                    continue
                try:
                    # The control database holds ids only; its free blocks hold no content.
                    check_duckdb_file(path, con, series, result, strict_blocks=path != control_file)
                finally:
                    con.close()
            elif name.endswith((".parquet", ".csv")) and path.is_relative_to(data_dir):
                scan_table_file(path, series, result)
            elif name == "keyed-hash.key":
                continue
            else:
                scan_bytes(path, raw_markers, result)
    return result
