"""``hotlist audit verify`` of the log in PostgreSQL: every record, the head, every anchor.

What is detected, and how (as for the file log, :mod:`hotlist.audit.verify`):

- an edited record: its HMAC no longer matches (recomputing it needs the key, which is
  not in the database);
- a removed, inserted or reordered record: ``seq`` or ``prev`` breaks;
- records cut off the end: the head row names a record that is not there, or an anchor
  (the database's, the control database's, a deletion report's) does; cutting the tail
  *and* moving the head back is seen at the first anchor past the cut;
- a forged or moved anchor: its HMAC with the key does not match;
- another key: the database's key identity is not this key's.

The records, the head and the database's anchors are read in one snapshot (repeatable
read), after the anchors kept outside the database: an anchor never names a record
appended after the snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from hotlist import pg
from hotlist.audit.anchors import Anchor, in_control
from hotlist.audit.keys import GENESIS, load_key, mac, same
from hotlist.audit.pg import (
    FIELDS,
    SEGMENT,
    SELECT_RECORDS,
    holds_anything,
    key_identity,
    open_log,
    stored_anchors,
)
from hotlist.audit.verify import ChainCheck, missing_anchored, report_anchors
from hotlist.store import control_path


def _outside_anchors(data_dir: Path) -> tuple[list[tuple[Anchor, str]], list[str]]:
    """Anchors of this log kept outside the database (control database, deletion
    reports); those of a file log kept before are the file log's to check."""
    notices: list[str] = []
    in_db, why = in_control(control_path(data_dir))
    if why:
        notices.append(why)
    found = [(a, "control database") for a in in_db] + report_anchors(data_dir)
    other = [a for a, _ in found if a.segment != SEGMENT]
    if other:
        notices.append(
            f"{len(other)} anchor(s) of the file log in {data_dir} not checked here"
            " (they name records of the log kept in files before)"
        )
    return [(a, s) for a, s in found if a.segment == SEGMENT], notices


def verify_pg(url: str, data_dir: Path) -> ChainCheck:
    """Check the whole chain in the database against the key and every anchor; read-only."""
    place = f"PostgreSQL at {pg.where(url)}"
    outside, notices = _outside_anchors(data_dir)
    problems: list[str] = []
    with open_log(url) as con:
        con.autocommit = False
        con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        con.read_only = True
        try:
            key = load_key(data_dir, create=False)
        except FileNotFoundError:
            if not holds_anything(con) and not outside:
                return _result([], notices, 0, 0, place)  # nothing written yet: nothing to check
            return _result(
                ["the audit key (secrets/audit-hmac.key) is missing: the log cannot be verified"],
                notices, 0, 0, place,
            )  # fmt: skip
        row = con.execute("SELECT identity FROM access_log_key").fetchone()
        if row is None:
            if con.execute("SELECT EXISTS (SELECT FROM access_log)").fetchone() == (True,):
                problems.append("the key identity (table access_log_key) was removed")
        elif not same(str(row[0]), key_identity(key)):
            return _result(
                ["this host's audit key is not the key the log is chained with: verify with"
                 " the key of the hosts that write it"],
                notices, 0, 0, place,
            )  # fmt: skip
        anchors = [(a, "database") for a in stored_anchors(con)] + outside
        genuine: list[Anchor] = []
        for anchor, source in anchors:
            if anchor.genuine(key) and anchor.segment == SEGMENT:
                genuine.append(anchor)
            else:
                problems.append(f"anchor in {source} is not genuine: {anchor.describe()}")
        expired = [a for a in genuine if a.kind == "expired"]
        by_seq: dict[int, list[Anchor]] = {}
        for a in genuine:
            if a.seq > 0 and a.kind != "expired":
                by_seq.setdefault(a.seq, []).append(a)
        start = max(expired, key=lambda a: a.seq, default=None)
        prev, seq = (start.hmac, start.seq + 1) if start else (GENESIS, 1)
        count = 0
        head_row = con.execute("SELECT seq, hash FROM access_log_head").fetchone()
        cur = con.cursor(name="access_log_verify")
        cur.itersize = 10000
        cur.execute(
            SELECT_RECORDS + " WHERE seq >= %s ORDER BY seq",
            (seq,),
        )
        for values in cur:
            entry: dict[str, Any] = dict(zip(FIELDS, values, strict=True))
            where = f"record {entry['seq']}"
            body = {k: v for k, v in entry.items() if k != "hash"}
            if not same(mac(key, body), entry["hash"]):
                problems.append(f"{where}: record was altered (HMAC mismatch)")
            elif entry["prev"] != prev:
                problems.append(f"{where}: chain broken (a record before it was removed or moved)")
            elif entry["seq"] != seq:
                problems.append(f"{where}: sequence {entry['seq']} where {seq} was due")
            for anchor in by_seq.pop(entry["seq"], []):
                if not same(anchor.hmac, entry["hash"]):
                    problems.append(
                        f"{where} is not the one anchored at {anchor.at} ({anchor.place}):"
                        " the log was rewritten"
                    )
            if problems:
                return _result(problems, notices, count, len(genuine), place)
            prev, seq, count = entry["hash"], seq + 1, count + 1
        cur.close()
        con.rollback()
    last = seq - 1
    problems += missing_anchored(by_seq, last, start)
    if head_row is None:
        problems.append("the head row (table access_log_head) is missing")
    elif (int(head_row[0]), str(head_row[1])) != (last, prev):
        if int(head_row[0]) > last:
            problems.append(
                f"log truncated: the head names record {head_row[0]}, but the log ends at"
                f" record {last}"
            )
        else:
            problems.append(
                f"the head (record {head_row[0]}) is not the log's last record ({last}):"
                " it was moved, or records were added outside the writers"
            )
    return _result(problems, notices, count, len(genuine), place)


def _result(
    problems: list[str], notices: list[str], records: int, anchors: int, place: str
) -> ChainCheck:
    return ChainCheck(
        not problems, records, problems[0] if problems else None, tuple(problems),
        tuple(notices), 0, anchors, place,
    )  # fmt: skip
