"""``hotlist audit verify``: every segment, every record's HMAC and link, every anchor.

What is detected, and how:

- an edited record: its HMAC no longer matches (recomputing it needs the key);
- a removed, inserted or reordered record: ``prev`` or ``seq`` breaks;
- records cut off the end, an emptied or deleted segment, a rewritten chain: an anchor
  (anchors database, control database, deletion reports) names a record that is no
  longer there, or is there with another HMAC;
- a segment swapped or dropped between months: the chain continues across segments, and
  every finished segment's seal must match its last record;
- a torn tail (a crash mid-write) is not tampering: it is reported, with its evidence.

Records appended after the newest anchor are protected by the key only: cutting them off
is seen at the next anchor's comparison only if they were anchored, hence an anchor at
every purge, every report and at least hourly while the log grows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from hotlist.audit.anchors import Anchor, in_control, stored
from hotlist.audit.keys import GENESIS, legacy_digest, load_key, mac, same
from hotlist.audit.segments import (
    LEGACY,
    month_of,
    parse,
    read_tail,
    segment_paths,
    torn_evidence,
)
from hotlist.store import control_path


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    records: int
    problem: str | None = None  # the first problem
    problems: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    segments: int = 0
    anchors: int = 0
    #: Where the log is, when not in files (``PostgreSQL at host:port/db``).
    place: str = ""


def report_anchors(data_dir: Path) -> list[tuple[Anchor, str]]:
    """Anchors written into deletion reports (``reports/*.json``)."""
    found: list[tuple[Anchor, str]] = []
    folder = data_dir / "reports"
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            summary = json.loads(path.read_text()).get("summary", {})
            raw = summary.get("access_log_anchor")
            if raw:
                found.append((Anchor(**raw), f"report {path.name}"))
        except (ValueError, TypeError, AttributeError, OSError):
            continue  # not a deletion report
    return found


def _all_anchors(data_dir: Path) -> tuple[list[tuple[Anchor, str]], list[str]]:
    notices: list[str] = []
    anchors = [(a, "anchors database") for a in stored(data_dir)]
    in_db, why = in_control(control_path(data_dir))
    if why:
        notices.append(why)
    anchors += [(a, "control database") for a in in_db]
    anchors += report_anchors(data_dir)
    return anchors, notices


def missing_anchored(by_seq: dict[int, list[Anchor]], last: int, start: Anchor | None) -> list[str]:
    """Anchored records the log no longer holds: past its end (cut off), or before it but
    not expired by retention (removed). ``start``: the last expired anchor, if any."""
    problems = []
    for anchor_seq, pending in sorted(by_seq.items()):
        for anchor in pending:
            if anchor_seq > last:
                problems.append(
                    f"log truncated: {anchor.describe()} was anchored, but the log ends at"
                    f" record {last}"
                )
            elif not (start and anchor_seq <= start.seq):
                problems.append(f"record {anchor_seq} anchored ({anchor.describe()}) is missing")
    return problems


def verify_files(data_dir: Path) -> ChainCheck:
    """Check every segment against the key and every anchor; read-only
    (:func:`hotlist.audit.log.verify_chain` chooses the log)."""
    paths = segment_paths(data_dir)
    anchors, notices = _all_anchors(data_dir)
    problems: list[str] = []
    try:
        key = load_key(data_dir, create=False)
    except FileNotFoundError:
        if any(p.name != LEGACY for p in paths) or anchors:
            return _result(
                ["the audit key (secrets/audit-hmac.key) is missing: the log cannot be verified"],
                notices, 0, len(paths), len(anchors),
            )  # fmt: skip
        key = b""  # only a log from before the keyed chain: checked with its own SHA-256

    genuine: list[Anchor] = []
    for anchor, source in anchors:
        if anchor.genuine(key):
            genuine.append(anchor)
        else:
            problems.append(f"anchor in {source} is not genuine: {anchor.describe()}")
    expired = [a for a in genuine if a.kind == "expired"]
    seals = {a.segment: a for a in genuine if a.kind == "seal"}
    # A segment whose expiry was recorded but that a crash left on disk: the next expiry
    # deletes it; the chain starts after it either way.
    paths = [p for p in paths if p.name not in {a.segment for a in expired}]
    by_seq: dict[int, list[Anchor]] = {}
    for a in genuine:
        if a.seq > 0:
            by_seq.setdefault(a.seq, []).append(a)

    start = max(expired, key=lambda a: a.seq, default=None)
    prev, seq, count = (start.hmac, start.seq + 1, 0) if start else (GENESIS, 1, 0)
    ends: dict[str, tuple[int, str]] = {}
    for index, path in enumerate(paths):
        torn_from = _torn_offset(path) if index == len(paths) - 1 else None
        offset = 0
        with open(path, "rb") as fh:
            for line_no, line in enumerate(fh, start=1):
                if torn_from is not None and offset >= torn_from:
                    notices.append(
                        f"{path.name}: torn last line ({os.path.getsize(path) - torn_from}"
                        " bytes, a write cut short); it is moved to evidence at the next append"
                    )
                    break
                offset += len(line)
                where = f"{path.name} line {line_no}"
                entry = parse(line)
                if entry is None:
                    problems.append(f"{where}: not a log record")
                    return _result(problems, notices, count, len(paths), len(genuine))
                body = {k: v for k, v in entry.items() if k != "hash"}
                digest = legacy_digest(body) if path.name == LEGACY else mac(key, body)
                if not same(digest, entry["hash"]):
                    problems.append(f"{where}: record was altered (HMAC mismatch)")
                elif entry["prev"] != prev:
                    problems.append(
                        f"{where}: chain broken (a record before it was removed or moved)"
                    )
                elif entry["seq"] != seq:
                    problems.append(f"{where}: sequence {entry['seq']} where {seq} was due")
                for anchor in by_seq.pop(entry["seq"], []):
                    if not same(anchor.hmac, entry["hash"]):
                        problems.append(
                            f"{where}: record {entry['seq']} is not the one anchored at"
                            f" {anchor.at} ({anchor.place}): the log was rewritten"
                        )
                if problems:
                    return _result(problems, notices, count, len(paths), len(genuine))
                prev, seq, count = entry["hash"], seq + 1, count + 1
        ends[path.name] = (seq - 1, prev)

    last = seq - 1
    problems += missing_anchored(by_seq, last, start)
    names = [p.name for p in paths]
    for name in names[:-1]:
        seal = seals.get(name)
        if seal is None:
            problems.append(f"{name}: finished segment has no seal")
        elif (seal.seq, seal.hmac) != ends.get(name):
            problems.append(f"{name}: does not end where its seal says ({seal.describe()})")
    expired_names = {a.segment for a in expired}
    for name, seal in seals.items():
        if name not in names and name not in expired_names:
            problems.append(f"{name}: sealed segment is missing ({seal.describe()})")
    notices += _torn_notices(data_dir, key, problems)
    notices += _future_notices(names)
    return _result(problems, notices, count, len(paths), len(genuine))


def _future_notices(names: list[str], now: dt.datetime | None = None) -> list[str]:
    """A segment named for a month still to come: a writer's clock was ahead (records
    of today are then appended to it, and the month before it was sealed early). Keyed
    records are not a forgery, so this is told, not failed; the clock is the operator's
    to fix."""
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return [
        f"{name}: segment dated in the future (after {at:%Y-%m}): a writer's clock was"
        " ahead; check the clock of every host that writes this log"
        for name in names
        if (month := month_of(name)) is not None and month > (at.year, at.month)
    ]


def _torn_offset(path: Path) -> int | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        tail = read_tail(fd)
    finally:
        os.close(fd)
    return tail.end if tail.torn else None


def _torn_notices(data_dir: Path, key: bytes, problems: list[str]) -> list[str]:
    notices: list[str] = []
    for path, entry in torn_evidence(data_dir):
        if entry is None or not same(
            mac(key, {k: v for k, v in entry.items() if k != "mac"}), str(entry.get("mac", ""))
        ):
            problems.append(f"{path.name}: torn-tail evidence was altered")
            continue
        notices.append(
            f"torn tail kept as evidence in {path.name}: {entry['length']} bytes after record"
            f" {entry['after_seq']} of {entry['segment']}, found {entry['found_at']}"
        )
    return notices


def _result(
    problems: list[str], notices: list[str], records: int, segments: int, anchors: int
) -> ChainCheck:
    return ChainCheck(
        not problems, records, problems[0] if problems else None, tuple(problems),
        tuple(notices), segments, anchors,
    )  # fmt: skip
