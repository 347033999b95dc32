"""Reading the end of a segment: the last whole record is found whatever a crash (or
anything else) left after it, and a log from before the keyed chain keeps verifying."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hotlist import audit
from hotlist.audit.segments import join_fragment, read_tail, split_fragment

RECORD = audit.AccessRecord("jdoe", "CA0190000", "patrol", "plate 7ABC123", "granted", "cli")


def _line(seq: int, pad: str) -> bytes:
    entry = {"seq": seq, "prev": "0" * 64, "hash": f"{seq:064x}", "pad": pad}
    return json.dumps(entry).encode() + b"\n"


@settings(max_examples=150, deadline=None)
@given(
    pads=st.lists(st.text(max_size=3000), max_size=6),
    torn=st.binary(max_size=20000).filter(lambda b: b"\n" not in b),
)
def test_the_last_whole_record_is_found_before_any_torn_bytes(pads: list[str], torn: bytes) -> None:
    body = b"".join(_line(i + 1, p) for i, p in enumerate(pads))
    with tempfile.TemporaryFile() as fh:
        fh.write(body + torn)
        fh.flush()
        tail = read_tail(fh.fileno())
    if not pads:
        assert tail.last is None and tail.end == 0 and tail.torn == torn
        return
    if _is_json_record(torn):
        return  # a tail that is itself a whole record is not torn (cannot come from a crash)
    assert tail.last is not None
    assert tail.last["seq"] == len(pads)
    assert tail.end == len(body)
    assert tail.torn == torn


def _is_json_record(data: bytes) -> bool:
    try:
        value = json.loads(data)
    except ValueError:
        return False
    return isinstance(value, dict) and {"seq", "hash", "prev"} <= set(value)


@given(garbage=st.lists(st.binary(max_size=200).filter(lambda b: b"\n" not in b), max_size=5))
def test_garbled_whole_lines_at_the_end_are_part_of_the_torn_tail(garbage: list[bytes]) -> None:
    garbage = [g for g in garbage if not _is_json_record(g)]
    body = _line(1, "") + _line(2, "x")
    rest = b"".join(g + b"\n" for g in garbage)
    with tempfile.TemporaryFile() as fh:
        fh.write(body + rest)
        fh.flush()
        tail = read_tail(fh.fileno())
    assert tail.last is not None and tail.last["seq"] == 2
    assert (tail.end, tail.torn) == (len(body), rest)


def _legacy_log(data_dir: Path, n: int) -> Path:
    """A log as the unkeyed chain wrote it (audit/access.jsonl, SHA-256)."""
    folder = data_dir / "audit"
    folder.mkdir(parents=True)
    prev, lines = "0" * 64, []
    for seq in range(1, n + 1):
        body = {"seq": seq, "time": "2026-11-01T10:00:00+00:00", "user": "jdoe",
                "organization": "CA0190000", "purpose": "patrol", "data_element": "plate X",
                "outcome": "granted", "channel": "cli", "client": "", "prev": prev}  # fmt: skip
        digest = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        ).hexdigest()
        lines.append(json.dumps({**body, "hash": digest}, sort_keys=True) + "\n")
        prev = digest
    path = folder / "access.jsonl"
    path.write_text("".join(lines))
    os.chmod(path, 0o600)
    return path


def test_a_log_from_before_the_keyed_chain_is_verified_sealed_and_continued(tmp_path: Path) -> None:
    legacy = _legacy_log(tmp_path, 3)
    assert audit.verify_chain(tmp_path).ok
    entry = audit.append(tmp_path, RECORD)
    assert entry["seq"] == 4
    assert entry["prev"] == json.loads(legacy.read_text().splitlines()[-1])["hash"]
    check = audit.verify_chain(tmp_path)
    assert check.ok, check.problems
    assert (check.records, check.segments) == (4, 2)
    legacy.chmod(0o600)
    legacy.write_text(legacy.read_text().replace("jdoe", "mallory", 1))
    assert not audit.verify_chain(tmp_path).ok


@given(st.text())
def test_a_torn_fragment_split_as_evidence_joins_back_exactly(text: str) -> None:
    assert join_fragment(split_fragment(text)) == text


def test_torn_evidence_keeps_a_queried_plate_only_where_verification_allows_it(
    tmp_path: Path,
) -> None:
    from hotlist.verify_access import AccessLogSearch

    audit.append(tmp_path, RECORD)
    with open(audit.log_path(tmp_path), "ab") as fh:
        fh.write(b'{"channel":"cli","client":"","data_element":"plate ZQXLOOK7","hash":"1f')
    audit.append(tmp_path, RECORD)
    [torn] = (tmp_path / "audit").glob("*.torn")
    search = AccessLogSearch(["ZQXLOOK7"], ["F000000007"])
    assert b"ZQXLOOK7" in torn.read_bytes()  # kept, as evidence
    assert search.scan(torn) == []  # in the queried field only: lawful
    assert search.scan(audit.log_path(tmp_path)) == []
