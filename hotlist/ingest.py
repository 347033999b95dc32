"""Ingest a source: fetch its files, parse and validate each, apply each whole or not at all.

These are plain functions; ``flows/ingest_*.py`` wrap them in Prefect tasks, and the CLI
calls them directly when no Prefect API is configured.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb

from hotlist.chance import grouped
from hotlist.codes import hit_type_lists
from hotlist.config import Settings
from hotlist.keyed import local_key
from hotlist.layout import load_layout
from hotlist.parse import FileRejected, read_snapshot
from hotlist.sources import FetchError, LandedFile, Taken, Unchanged
from hotlist.sources.fetch import fetch
from hotlist.sources.landing import discard
from hotlist.store import control as ctl
from hotlist.store.apply import ApplyResult, apply_snapshot
from hotlist.store.content import recover
from hotlist.store.lock import writer_lock
from hotlist.store.state import write_state

log = logging.getLogger("hotlist.ingest")

#: The hotlist list each CLEW table feeds.
CLEW_LISTS = {"svs": "stolen_vehicle", "sfr": "felony_vehicle", "slr": "stolen_plate"}


@dataclass(frozen=True)
class Rejection:
    """A file refused whole; the previous snapshot of its feed stays current."""

    feed: str
    name: str
    sha256: str
    rule: str
    message: str


Outcome = ApplyResult | Rejection


class IngestFailed(Exception):
    """At least one file was rejected; the message lists them (no record content)."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self.rejections = [o for o in outcomes if isinstance(o, Rejection)]
        # Grouped (16,817): the message is kept in Prefect's database with the flow run.
        super().__init__(
            grouped(
                "; ".join(
                    f"{r.feed}/{r.name} rejected [{r.rule}]: {r.message}" for r in self.rejections
                )
            )
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def feeds_of(settings: Settings, source_name: str) -> list[str]:
    return list(settings.source(source_name).files)


def last_taken(con: duckdb.DuckDBPyConnection, feed: str) -> Taken | None:
    """The file taken last for ``feed`` (applied, or identical to an applied one)."""
    row = ctl.one(
        con,
        """
        SELECT name, sha256 FROM file_events
        WHERE feed = ? AND verdict IN ('applied', 'duplicate')
        ORDER BY event_id DESC LIMIT 1
        """,
        [feed],
    )
    return None if row is None else Taken(str(row[0]), str(row[1]))


def acquire(settings: Settings, source_name: str) -> list[LandedFile | Unchanged]:
    """Fetch the source's files into the landing area; a failure is recorded, then raised."""
    source = settings.source(source_name)
    data_dir = settings.data_dir
    feeds = feeds_of(settings, source_name)
    with writer_lock(data_dir, wait_s=600):
        con = ctl.connect(data_dir)
        try:
            recover(con, data_dir)
            try:
                fetched = fetch(
                    source_name,
                    source,
                    feeds,
                    data_dir,
                    lambda feed: last_taken(con, feed),
                )
            except FetchError as exc:
                for feed in feeds:
                    ctl.record_event(
                        con,
                        ctl.FileEvent(
                            feed,
                            source.files[feed],
                            "fetch-failed",
                            rule=exc.kind.value,
                            message=str(exc),
                        ),
                        _now(),
                    )
                write_state(con, data_dir)
                raise
            return fetched
        finally:
            con.close()


def apply_landed(
    settings: Settings,
    source_name: str,
    landed: LandedFile,
    approved_sha256: str | None = None,
) -> Outcome:
    """Parse, validate and apply one landed file; the landing copy is deleted afterwards."""
    source = settings.source(source_name)
    layout = load_layout(source.layout)
    data_dir = settings.data_dir
    hit_types = frozenset(source.hit_types) if layout.has_record_id else frozenset(hit_type_lists())
    identity = list(layout.identity)
    now = _now()
    try:
        with writer_lock(data_dir, wait_s=600):
            con = ctl.connect(data_dir)
            try:
                recover(con, data_dir)
                try:
                    snapshot = read_snapshot(
                        landed.path,
                        layout,
                        landed.feed,
                        CLEW_LISTS.get(landed.feed),
                        hit_types,
                        fallback_time=dt.datetime.fromtimestamp(landed.mtime, dt.UTC),
                        hash_key=local_key(data_dir),
                        now=now,
                    )
                    result: Outcome = apply_snapshot(
                        con,
                        data_dir,
                        landed,
                        snapshot,
                        identity,
                        source.guards,
                        approved_sha256,
                        now,
                    )
                except FileRejected as exc:
                    ctl.record_event(
                        con,
                        ctl.FileEvent(
                            landed.feed,
                            landed.name,
                            "rejected",
                            landed.sha256,
                            landed.size,
                            landed.mtime,
                            rule=exc.rule,
                            message=str(exc),
                        ),
                        now,
                        exc.issues,
                    )
                    result = Rejection(landed.feed, landed.name, landed.sha256, exc.rule, str(exc))
                write_state(con, data_dir)
            finally:
                con.close()
    finally:
        # The landing copy holds record content: it never outlives its apply.
        discard(landed.path)
    log.info("%s", describe(result))
    return result


def describe(outcome: Outcome) -> str:
    """One log line about an outcome: names, versions and counts only."""
    if isinstance(outcome, Rejection):
        return (
            f"{outcome.feed}/{outcome.name} rejected [{outcome.rule}] sha256={outcome.sha256[:12]}"
        )
    if outcome.verdict == "duplicate":
        return f"{outcome.feed}/{outcome.name} unchanged (already applied at version {outcome.version})"
    return (
        f"{outcome.feed}/{outcome.name} applied as version {outcome.version}: {outcome.entries} entries,"
        f" +{outcome.added} ~{outcome.changed} -{outcome.removed}, carried {outcome.carried},"
        f" quarantined {outcome.quarantined}, warnings {outcome.warnings};"
        f" {outcome.reused} lines unchanged since the previous version were copied, not parsed"
    )


def ingest_source(
    settings: Settings, source_name: str, approved_sha256: str | None = None
) -> list[Outcome]:
    """Fetch and apply every file of a source, without Prefect. Raises IngestFailed on rejections."""
    outcomes: list[Outcome] = []
    for item in acquire(settings, source_name):
        if isinstance(item, Unchanged):
            log.info("%s/%s unchanged upstream (same sha256 as taken last)", item.feed, item.name)
            continue
        outcomes.append(apply_landed(settings, source_name, item, approved_sha256))
    if any(isinstance(o, Rejection) for o in outcomes):
        raise IngestFailed(outcomes)
    return outcomes


def rebuild_state(data_dir: Path) -> None:
    """Recover leftovers of a killed run and rewrite state.json (takes the writer lock)."""
    with writer_lock(data_dir, wait_s=600):
        con = ctl.connect(data_dir)
        try:
            recover(con, data_dir)
            write_state(con, data_dir)
        finally:
            con.close()
