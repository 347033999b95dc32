"""The access log is tamper-evident against someone who can write its files: a keyed
chain, anchors outside the log, sealed monthly segments; a torn tail is evidence, not a
failure."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotlist import audit
from hotlist.audit import anchors, segments
from hotlist.audit.chain import AccessLogWriter, LineMaker
from hotlist.audit.keys import GENESIS, canonical, mac
from hotlist.audit.segments import Head

NOV = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
DEC = dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC)


def _record(i: int, user: str = "jdoe") -> audit.AccessRecord:
    return audit.AccessRecord(
        user, "CA0190000", "patrol", f"plate 7ABC{i:03d}", "granted: 0 hits", "cli"
    )


def _fill(data_dir: Path, n: int, at: dt.datetime = DEC) -> None:
    for i in range(n):
        audit.append(data_dir, _record(i), at=at + dt.timedelta(minutes=i))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _rechain_with_sha256(lines: list[str]) -> list[str]:
    """What an intruder without the key can do: edit, then recompute every digest."""
    out, prev = [], None
    for line in lines:
        entry = json.loads(line)
        if prev is not None:
            entry["prev"] = prev
        body = {k: v for k, v in entry.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        entry["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
        prev = entry["hash"]
        out.append(json.dumps(entry, sort_keys=True) + "\n")
    return out


def test_an_intact_log_verifies_across_segments_and_anchors(tmp_path: Path) -> None:
    _fill(tmp_path, 3, NOV)
    _fill(tmp_path, 2, DEC)
    audit.anchor(tmp_path, "report")
    check = audit.verify_chain(tmp_path)
    assert check.ok, check.problems
    assert (check.records, check.segments) == (5, 2)
    assert check.anchors >= 3  # hourly anchors, the seal, the report's


def test_a_record_edited_and_the_chain_recomputed_without_the_key_is_detected(
    tmp_path: Path,
) -> None:
    _fill(tmp_path, 4)
    path = audit.log_path(tmp_path)
    lines = _lines(path)
    lines[1] = lines[1].replace("jdoe", "nobody")
    path.write_text("".join(_rechain_with_sha256(lines)))
    check = audit.verify_chain(tmp_path)
    assert not check.ok
    assert "altered" in str(check.problem)


def test_the_chain_is_keyed_with_a_key_outside_the_log_directory(tmp_path: Path) -> None:
    _fill(tmp_path, 1)
    key = tmp_path / "secrets" / "audit-hmac.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.parent != audit.log_path(tmp_path).parent
    key.write_bytes(os.urandom(32))  # someone swaps in a key of their own
    assert not audit.verify_chain(tmp_path).ok


def test_deleting_the_last_records_is_detected_by_the_anchor(tmp_path: Path) -> None:
    _fill(tmp_path, 5)
    audit.anchor(tmp_path, "purge run 7")
    path = audit.log_path(tmp_path)
    path.write_text("".join(_lines(path)[:3]))
    check = audit.verify_chain(tmp_path)
    assert not check.ok
    assert "truncated" in str(check.problem)
    assert "purge run 7" in str(check.problem)


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_emptying_or_deleting_the_log_is_detected(tmp_path: Path, how: str) -> None:
    _fill(tmp_path, 2)
    path = audit.log_path(tmp_path)
    if how == "emptied":
        path.write_text("")
    else:
        path.unlink()
    check = audit.verify_chain(tmp_path)
    assert not check.ok
    assert "truncated" in str(check.problem)


def test_a_log_emptied_then_refilled_does_not_pass_for_the_original(tmp_path: Path) -> None:
    _fill(tmp_path, 3)
    audit.anchor(tmp_path, "report")
    path = audit.log_path(tmp_path)
    path.write_text("")
    for i in range(3):  # a new chain of the same length, written through the key
        audit.append(tmp_path, _record(i, user="mallory"), at=DEC)
    check = audit.verify_chain(tmp_path)
    assert not check.ok
    assert "rewritten" in " ".join(check.problems)


def test_an_anchor_forged_without_the_key_is_reported(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    con = __import__("sqlite3").connect(anchors.store_path(tmp_path))
    con.execute("UPDATE anchors SET at = '2027-01-01T00:00:00.000000+00:00'")
    con.commit()
    con.close()
    check = audit.verify_chain(tmp_path)
    assert not check.ok
    assert "not genuine" in str(check.problem)


def test_the_anchor_is_recorded_in_the_control_database_by_a_writer_holding_it(
    tmp_path: Path,
) -> None:
    _fill(tmp_path, 3)
    control = tmp_path / "store" / "control.duckdb"
    control.parent.mkdir(parents=True)
    con = duckdb.connect(str(control))
    made = audit.anchor(tmp_path, "purge run 1", con=con)
    con.close()
    assert (made.seq, made.segment) == (3, audit.log_path(tmp_path).name)
    [(stored_seq, place)] = (
        duckdb.connect(str(control), read_only=True)
        .execute("SELECT seq, place FROM audit_anchors")
        .fetchall()
    )
    assert (stored_seq, place) == (3, "purge run 1")
    # the anchors database lost its copy: the control database's still catches a cut
    anchors.store_path(tmp_path).unlink()
    path = audit.log_path(tmp_path)
    path.write_text("".join(_lines(path)[:2]))
    check = audit.verify_chain(tmp_path)
    assert not check.ok
    assert "truncated" in str(check.problem)


def test_segments_rotate_monthly_are_sealed_and_chained_across(tmp_path: Path) -> None:
    _fill(tmp_path, 2, NOV)
    _fill(tmp_path, 1, DEC)
    nov, dec = audit.segment_paths(tmp_path)
    assert (nov.name, dec.name) == ("access-2026-11.jsonl", "access-2026-12.jsonl")
    assert stat.S_IMODE(nov.stat().st_mode) == 0o400
    [seal] = [a for a in anchors.stored(tmp_path) if a.kind == "seal"]
    last_nov = json.loads(_lines(nov)[-1])
    assert (seal.segment, seal.seq, seal.hmac) == (nov.name, 2, last_nov["hash"])
    first_dec = json.loads(_lines(dec)[0])
    assert (first_dec["seq"], first_dec["prev"]) == (3, last_nov["hash"])
    assert audit.verify_chain(tmp_path).ok


def test_a_missing_or_cut_sealed_segment_is_detected(tmp_path: Path) -> None:
    _fill(tmp_path, 3, NOV)
    _fill(tmp_path, 1, DEC)
    nov = audit.segment_paths(tmp_path)[0]
    nov.chmod(0o600)
    original = nov.read_text()
    nov.write_text("".join(original.splitlines(keepends=True)[:2]))
    assert not audit.verify_chain(tmp_path).ok
    nov.unlink()
    check = audit.verify_chain(tmp_path)
    assert not check.ok
    assert "chain broken" in str(check.problem)


def test_retention_deletes_whole_old_months_and_the_rest_still_verifies(tmp_path: Path) -> None:
    for month in (1, 2, 3):
        _fill(tmp_path, 2, dt.datetime(2025, month, 5, tzinfo=dt.UTC))
    _fill(tmp_path, 2, DEC)
    deleted = audit.expire(tmp_path, 21, now=DEC)
    assert deleted == ["access-2025-01.jsonl", "access-2025-02.jsonl"]
    assert [p.name for p in audit.segment_paths(tmp_path)] == [
        "access-2025-03.jsonl", "access-2026-12.jsonl",
    ]  # fmt: skip
    check = audit.verify_chain(tmp_path)
    assert check.ok, check.problems
    assert check.records == 4
    with pytest.raises(ValueError, match="minimum 12"):
        audit.expire(tmp_path, 11, now=DEC)


def test_retention_is_read_from_the_configuration_with_a_lawful_default(tmp_path: Path) -> None:
    from hotlist.config import ConfigError, load_settings

    config = tmp_path / "hotlist.toml"
    config.write_text('data_dir = "data"\n')
    assert audit.retention_months(load_settings(config, environ={})) == 24
    config.write_text('data_dir = "data"\n[audit]\nretention_months = 36\n')
    assert audit.retention_months(load_settings(config, environ={})) == 36
    config.write_text('data_dir = "data"\n[audit]\nretention_months = 6\n')
    with pytest.raises(ConfigError, match="retention_months"):
        load_settings(config, environ={})


def test_a_torn_tail_is_kept_as_evidence_reported_and_the_chain_continues(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    path = audit.log_path(tmp_path)
    fragment = b'{"client":"","data_element":"plate 7ABC9'
    with open(path, "ab") as fh:
        fh.write(fragment)
    before = audit.verify_chain(tmp_path)
    assert before.ok
    assert any("torn last line" in n for n in before.notices)
    assert list(audit.records(tmp_path))[-1]["seq"] == 2  # readers skip it, never crash

    entry = audit.append(tmp_path, _record(3))
    assert entry["seq"] == 4  # 3 is the logged recovery
    recovery = list(audit.records(tmp_path))[2]
    assert (recovery["channel"], recovery["outcome"]) == ("system", "recovered")
    assert "torn tail" in recovery["data_element"]
    evidence = path.with_name(path.name + ".torn")
    [kept] = [json.loads(line) for line in evidence.read_text().splitlines()]
    assert segments.join_fragment(kept).encode() == fragment
    assert stat.S_IMODE(evidence.stat().st_mode) == 0o600
    after = audit.verify_chain(tmp_path)
    assert after.ok, after.problems
    assert any("torn tail kept as evidence" in n for n in after.notices)


def test_a_server_writer_recovers_a_tail_torn_by_another_process(tmp_path: Path) -> None:
    writer = audit.AccessLogWriter(tmp_path)
    writer.append(_record(1))
    with open(audit.log_path(tmp_path), "ab") as fh:
        fh.write(b'{"seq": 2, "ti')
    writer.append(_record(2))
    writer.close()
    check = audit.verify_chain(tmp_path)
    assert check.ok, check.problems
    assert check.records == 3


def test_a_batch_append_is_one_chained_write(tmp_path: Path) -> None:
    entries = audit.append_many(tmp_path, [_record(i) for i in range(5)])
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert audit.verify_chain(tmp_path).ok


_APPENDER = """
import sys
from pathlib import Path
from hotlist import audit
w = audit.AccessLogWriter(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    w.append(audit.AccessRecord("u" + sys.argv[3], "CA0190000", "patrol", "plate X", "granted", "api"))
w.close()
"""


def test_an_anchors_database_whose_table_is_not_made_yet_reads_as_empty(tmp_path: Path) -> None:
    """Two writers' first appends at once: one has created the anchors file, not yet its
    table, when the other opens it (seen in CI: ``no such table: anchors``)."""
    path = anchors.store_path(tmp_path)
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).close()  # the file, without its schema
    assert anchors.last_anchored(tmp_path) is None
    assert anchors.stored(tmp_path) == []


def test_two_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _APPENDER, str(tmp_path), "150", str(n)])
        for n in (1, 2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    check = audit.verify_chain(tmp_path)
    assert check.ok, check.problems
    assert check.records == 300


def test_a_writer_killed_mid_stream_leaves_a_log_that_verifies_and_accepts_appends(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _APPENDER, str(tmp_path), "100000", "1"])
    path = tmp_path / "audit" / segments.segment_name(dt.datetime.now(dt.UTC))
    while not path.exists() or path.stat().st_size < 20_000:
        assert proc.poll() is None
    proc.kill()
    proc.wait()
    audit.append(tmp_path, _record(0))
    check = audit.verify_chain(tmp_path)
    assert check.ok, check.problems


def test_verify_of_a_data_dir_without_a_log_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    assert audit.verify_chain(missing).ok
    assert not missing.exists()


def test_a_server_syncing_from_another_thread_survives_the_month_turning(tmp_path: Path) -> None:
    import threading

    writer = audit.AccessLogWriter(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def syncer() -> None:
        while not stop.is_set():
            try:
                writer.sync()
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=syncer)
    thread.start()
    for i in range(300):
        writer.append(_record(i), at=(NOV if i < 150 else DEC) + dt.timedelta(seconds=i))
    stop.set()
    thread.join()
    writer.close()
    assert errors == []
    assert [p.name for p in audit.segment_paths(tmp_path)] == [
        "access-2026-11.jsonl", "access-2026-12.jsonl",
    ]  # fmt: skip
    assert audit.verify_chain(tmp_path).ok


def test_a_server_writer_never_writes_into_a_segment_deleted_under_it(tmp_path: Path) -> None:
    writer = audit.AccessLogWriter(tmp_path)
    writer.append(_record(1))
    writer.append(_record(2))
    audit.log_path(tmp_path).unlink()
    writer.append(_record(3, user="after"))
    writer.close()
    assert [r["user"] for r in audit.records(tmp_path)] == ["after"]  # on disk, not lost
    check = audit.verify_chain(tmp_path)
    assert not check.ok  # and the deletion shows against the anchor
    assert "rewritten" in " ".join(check.problems) or "truncated" in " ".join(check.problems)


def test_a_data_dir_with_quotes_spaces_and_uri_characters_works(tmp_path: Path) -> None:
    data_dir = tmp_path / 'it\'s a "data" dir #1 ?x=%20'
    _fill(data_dir, 3)
    audit.anchor(data_dir, "report")
    assert len(anchors.stored(data_dir)) == 2
    check = audit.verify_chain(data_dir)
    assert check.ok, check.problems
    assert check.anchors == 2


def test_writers_anchor_the_head_at_least_hourly_while_the_log_grows(tmp_path: Path) -> None:
    for minutes in (0, 20, 40, 61, 90, 125):
        audit.append(tmp_path, _record(minutes), at=DEC + dt.timedelta(minutes=minutes))
    hourly = [a for a in anchors.stored(tmp_path) if a.place == "hourly"]
    assert [a.seq for a in hourly] == [1, 4, 6]


def test_an_anchor_altered_in_a_deletion_report_is_reported(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    made = audit.anchor(tmp_path, "purge run 3")
    reports = tmp_path / "reports"
    reports.mkdir()
    forged = {**made.as_dict(), "seq": 1}
    (reports / "deletions-run000003.json").write_text(
        json.dumps({"summary": {"access_log_anchor": forged}, "records": []})
    )
    check = audit.verify_chain(tmp_path)
    assert not check.ok
    assert "report deletions-run000003.json is not genuine" in str(check.problem)


def test_a_segment_left_by_a_crash_after_its_expiry_was_recorded_does_not_fail_verify(
    tmp_path: Path,
) -> None:
    _fill(tmp_path, 2, dt.datetime(2024, 1, 5, tzinfo=dt.UTC))
    _fill(tmp_path, 2, DEC)
    old = audit.segment_paths(tmp_path)[0]
    kept = old.read_bytes()
    audit.expire(tmp_path, 12, now=DEC)
    old.write_bytes(kept)  # as if killed between the expired anchor and the unlink
    check = audit.verify_chain(tmp_path)
    assert check.ok, check.problems
    assert audit.expire(tmp_path, 12, now=DEC) == [] or not old.exists()


#: Any text a field can hold: quotes, backslashes, controls, non-ASCII, lone surrogates.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(ANY_TEXT, min_size=7, max_size=7), seq=st.integers(0, 2**62))
def test_a_record_line_is_the_canonical_json_of_its_entry_signed_over_its_body(
    fields: list[str], seq: int
) -> None:
    """The line written is what verification recomputes: canonical(entry), and the hash
    the HMAC of canonical(entry without hash), whatever the fields hold."""
    key = bytes(range(32))
    record = audit.AccessRecord(*fields)
    head = Head("access-2026-12.jsonl", seq, "ab" * 32)
    entry, line = LineMaker(key).chained(head, "2026-12-02T09:00:00.000001+00:00", record.fields())
    body = {k: v for k, v in entry.items() if k != "hash"}
    assert body == {
        "seq": seq + 1, "time": "2026-12-02T09:00:00.000001+00:00", **record.fields(),
        "prev": "ab" * 32,
    }  # fmt: skip
    assert entry["hash"] == mac(key, body)
    assert line == canonical(entry) + b"\n"
    assert json.loads(line) == entry


def test_records_with_awkward_text_verify_after_a_server_writer_appends_them(
    tmp_path: Path,
) -> None:
    writer = AccessLogWriter(tmp_path)
    awkward = ['qu"ote\\', "t\tab\nline", "Ω ünïcode 車", "\ud800 lone", "", "\x00\x7f"]
    for i, text in enumerate(awkward):
        writer.append_many([audit.AccessRecord(text, "CA0190000", "patrol", text, "granted", "api", text)],
                           at=DEC + dt.timedelta(seconds=i))  # fmt: skip
    writer.close()
    check = audit.verify_chain(tmp_path)
    assert check.ok, check
    lines = (tmp_path / "audit" / "access-2026-12.jsonl").read_bytes().splitlines(keepends=True)
    assert [json.loads(x)["user"] for x in lines] == awkward
    assert json.loads(lines[0])["prev"] == GENESIS
