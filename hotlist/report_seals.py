"""Seals of the purge runs' deletion reports: what each purge's verification of them reads.

Reports are kept, one pair a purge run (about 11 MB a day of the 2M-line NCIC extract),
and every purge must show that none holds a removed plate. Searched as raw bytes, that
cost grew with every day the store had run (1.2-1.5 s more per 30 days). Yet a report's
bytes never change once written, and what in them can hold a plate is a small part of
them: its texts (a record's name and reason, the copies' and replicas' names), not its
counts and times (:mod:`hotlist.verify_reports`).

So when the purge writes a report it seals it in the control database: the SHA-256 of
each of its files (``report_seals``), and its texts (``report_texts``, each text once,
times taken out). A later verification hashes each sealed file: one whose bytes are
still the sealed ones holds exactly those texts, and they are judged where they are kept,
in the control database, as free text (:data:`hotlist.scan.FREE_TEXT`: searched inside
by the chance rule). A file whose bytes changed, or that was never sealed (written by an
older release), is searched as raw bytes, as before. A report written again (late) adds
its texts; the texts of a report whose files were all removed are dropped with its seals
when the next report is written (:func:`forget_removed`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from hotlist.chance import ISO_TIME

#: The control database's tables of seals (created with its schema).
SCHEMA = """
CREATE TABLE IF NOT EXISTS report_seals (report VARCHAR NOT NULL, sha256 VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS report_texts (report VARCHAR NOT NULL, report_text VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS report_unsealed (report VARCHAR NOT NULL);
"""
#: Bytes hashed at a time.
CHUNK = 4 << 20
#: Reports of an older release tried at most per report written: each is read value by
#: value first (about 0.27 CPU-s for a day of the 2M-line extract). One that does not read
#: as written is noted (``report_unsealed``) and not tried again: it stays searched as raw
#: bytes, and later purges do not read it value by value each time.
BACKLOG = 30


def digest(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def texts_of(summary: dict[str, Any], rows: pl.DataFrame) -> list[str]:
    """Every text of a report that can hold content: the summary's keys and texts and
    its records' text fields, times taken out, each once (what
    :func:`hotlist.verify_reports.judge` judges)."""
    from hotlist.verify_reports import _texts

    found = {ISO_TIME.sub(" ", text) for _, text in _texts(summary, "summary")}
    for column in rows.columns:
        if rows[column].dtype == pl.String:
            values = rows[column].drop_nulls().str.replace_all(ISO_TIME.pattern, " ")
            found.update(values.unique().to_list())
    found.discard("")
    return sorted(found)


def seal(con: duckdb.DuckDBPyConnection, files: list[Path], texts: list[str]) -> None:
    """Seal a report's files (named in ``report_seals`` by file name) with its texts."""
    con.execute(SCHEMA)
    names = [f.name for f in files]
    con.execute("DELETE FROM report_seals WHERE list_contains(?, report)", [names])
    con.executemany("INSERT INTO report_seals VALUES (?, ?)", [[f.name, digest(f)] for f in files])
    report = files[0].stem
    con.register("_texts", pl.DataFrame({"t": texts}, schema={"t": pl.String}).to_arrow())
    try:
        con.execute(
            "INSERT INTO report_texts SELECT ?, t FROM _texts WHERE t NOT IN"
            " (SELECT report_text FROM report_texts WHERE report = ?)",
            [report, report],
        )
    finally:
        con.unregister("_texts")


def seals(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Each sealed report file's name and SHA-256 (none in a control database written by
    a release before seals)."""
    try:
        return dict(con.execute("SELECT report, sha256 FROM report_seals").fetchall())
    except duckdb.CatalogException:
        return {}


def seal_backlog(con: duckdb.DuckDBPyConnection, reports: Path, limit: int = BACKLOG) -> int:
    """Seal up to ``limit`` run reports no seal covers (written by a release before
    seals) and none tried before, oldest first, each only if it reads as written
    (:func:`hotlist.verify_reports.read_report`, its page rendered from it): its texts are
    then the ones its structure holds. Returns how many were sealed."""
    from hotlist.verify_reports import RUN_REPORT, _rendered, _rows, read_report

    con.execute(SCHEMA)
    done = set(seals(con)) | {r for (r,) in con.execute("SELECT report FROM report_unsealed").fetchall()}  # fmt: skip
    tried = sealed = 0
    for data in sorted(reports.glob("deletions-run*.json")) if reports.is_dir() else []:
        page = data.with_suffix(".html")
        if tried >= limit or not RUN_REPORT.fullmatch(data.name) or data.name in done:
            continue
        if not (data.is_file() and page.is_file()) or data.is_symlink() or page.is_symlink():
            continue
        tried += 1
        try:
            parsed = read_report(data.read_bytes())
            ok = parsed is not None and _rendered(page, *parsed)
            texts = texts_of(parsed[0], _rows(parsed[1])) if parsed is not None and ok else []
        except (OSError, RecursionError, UnicodeEncodeError):
            ok = False
        if not ok:  # not as written: searched as raw bytes, as before, and not tried again
            con.execute("INSERT INTO report_unsealed VALUES (?)", [data.name])
            continue
        seal(con, [page, data], texts)
        sealed += 1
    return sealed


def forget_removed(con: duckdb.DuckDBPyConnection, reports: Path) -> int:
    """Drop the seals and texts of reports whose files are all gone: the control database
    keeps texts only of reports still on disk, so an operator who removes a report (its
    reason named a plate removed since, say) removes its texts with it at the next report
    written. The tables are written anew (a row deleted in place stays in the file).
    Returns how many reports were forgotten."""
    sealed = seals(con)
    present = {name for name in sealed if (reports / name).exists()}
    stems = {Path(name).stem for name in sealed}
    gone = sorted(stems - {Path(name).stem for name in present})
    if not gone:
        return 0
    con.execute(
        "CREATE OR REPLACE TABLE report_seals AS SELECT * FROM report_seals"
        " WHERE list_contains(?, report)",
        [sorted(present)],
    )
    con.execute(
        "CREATE OR REPLACE TABLE report_texts AS SELECT * FROM report_texts"
        " WHERE NOT list_contains(?, report)",
        [gone],
    )
    return len(gone)


def clean_reports(
    reports: Path, markers: list[str], seals: dict[str, str] | None = None
) -> list[Path]:
    """The run reports in ``reports`` whose content is verified where it lies: their
    bytes still the sealed ones (``seals``, :mod:`hotlist.report_seals`: their texts are
    judged in the control database), or exactly as written and holding none of
    ``markers``, verified value by value. Their blocks on a raw device hold only what
    they hold (:mod:`hotlist.raw_device`)."""
    from hotlist.verify_reports import is_run_report, scan_report

    if not reports.is_dir():
        return []
    clean = []
    for path in sorted(reports.iterdir()):
        if is_run_report(path, reports) and path.is_file() and not path.is_symlink():
            try:
                sealed = (seals or {}).get(path.name)
                if (sealed is not None and digest(path) == sealed) or scan_report(
                    path, markers
                ) == []:
                    clean.append(path)
            except OSError:
                continue  # not left out of the device's search
    return clean
