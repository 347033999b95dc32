"""The chance rule (``hotlist.chance.edges``) attacked from both sides: copies of a removed
plate it must still find, and content the system writes itself that it must not take for
one. Real files on disk, real searches."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotlist import audit
from hotlist.chance import ENCODINGS
from hotlist.cli import app
from hotlist.config import Settings
from hotlist.ingest import ingest_source
from hotlist.purge import PurgeIncomplete, purge
from hotlist.raw_device import RawHit, scan_device, schemas_under
from hotlist.scan import BLOCK, RAW_HIT, ByteSearch, raw_patterns
from hotlist.verify import verify
from hotlist.verify_access import AccessLogSearch
from tests.builders import Drop, ncic_file, ncic_line

NIC = "V123456789"  # the NIC an earlier deletion report names, kept forever
DIGITS = "3456789"  # a removed plate of digits only, inside that NIC by chance
NAME_HIT = "a file's name holds content of a removed record"
MEMBER_HIT = "a member's name holds content of a removed record"


def _around_a_cut(unit: str, phase: int, encoding: str = "utf-8") -> bytes:
    """A stream of one block and a little more, ``unit`` repeated from a little before the
    block's end to a little after it, starting ``phase`` characters later: across the
    phases, every occurrence of a plate inside ``unit`` stands at every position around
    the cut, the start of the carried tail included."""
    width = len("x".encode(encoding))
    start = BLOCK - 160 * width + phase * width
    units = unit.encode(encoding) * (320 // len(unit))
    return b"x" * start + units + " ".encode(encoding) * 64


@pytest.mark.parametrize("encoding", ["utf-8", "utf-32-be"])
def test_a_digit_plate_inside_a_nic_or_a_number_at_a_block_cut_is_no_finding(
    encoding: str,
) -> None:
    """Blocks are searched with the end of the previous one carried over. An occurrence
    wholly inside that carried end was judged again there without the digit before it,
    and one at a block's very end without the digit after it: both stood, so a NIC of a
    deletion report or a number in Prefect's database that happened to lie at a cut
    failed the purge, every time (the file does not change)."""
    search = ByteSearch(raw_patterns([DIGITS]))
    for phase in range(11):
        assert not search.stream(BytesIO(_around_a_cut(f"{NIC} ", phase, encoding))), phase
    for phase in range(10):
        assert not search.stream(BytesIO(_around_a_cut("0123456789", phase, encoding))), phase
    for phase in range(9):  # and a plate standing there is found wherever the cut falls
        assert search.stream(BytesIO(_around_a_cut(f"<{DIGITS}> ", phase, encoding))), phase


def test_a_deletion_report_with_a_nic_at_a_block_cut_does_not_fail_verification(
    store: Settings, tmp_path: Path
) -> None:
    """Two files of just over a block, on disk: the removed plate's digits inside a NIC
    where the carried end of the first block starts, and at the very end of a block."""
    root = tmp_path / "reports"
    root.mkdir()
    search = ByteSearch(raw_patterns([DIGITS]))
    carried = search.overlap + 8  # what was carried before: the plate and two characters
    at = BLOCK - carried  # where the plate's digits start
    (root / "nic.json").write_bytes(b" " * (at - 3) + f'"{NIC}"'.encode()[1:] + b'"' * 64)
    (root / "count.txt").write_bytes(b" " * (BLOCK - 7) + b"34567890123 seconds\n")
    result = verify(store.data_dir, None, [DIGITS], extra_roots=[root])
    assert result.ok, result.findings
    (root / "note.txt").write_bytes(b" " * (at - 3) + f"CA {DIGITS} stolen".encode())
    found = verify(store.data_dir, None, [DIGITS], extra_roots=[root])
    assert [Path(f.place).name for f in found.findings] == ["note.txt"]


def test_the_raw_device_reports_only_occurrences_that_can_be_plates(tmp_path: Path) -> None:
    """The device search judged a block by the chance rule, then listed every occurrence
    in it: a removed digit plate where it stands in the markers' source (left out of the
    search: it is scrubbed next) made the digits of every NIC near it on the device (the
    deletion reports, the control database) findings. Nor may a NIC at a read block's
    cut stand for want of the digit before it."""
    image = tmp_path / "disk.img"
    source = (1 << 20, (1 << 20) + 4096)  # the superseded content file's extent
    carried = ByteSearch(raw_patterns([DIGITS])).overlap  # what a block carried before
    # Reports naming the NIC: its digits at 5 MB, and where the carried end of the first
    # read block starts (so in the second block nothing showed before them).
    nics = [5 << 20, (16 << 20) - carried - len('"nic": "V12')]
    with open(image, "wb") as fh:
        fh.truncate(40 << 20)
        fh.seek(source[0] + 100)
        fh.write(f"\x07{DIGITS}\x00".encode())  # the plate, in the excluded source
        for at in nics:
            fh.seek(at)
            fh.write(f'"nic": "{NIC}"'.encode())
    assert scan_device(image, [DIGITS], [source]) == []
    with open(image, "r+b") as fh:  # a copy outside the source is still found, exactly
        fh.seek(7 << 20)
        fh.write(f"plate={DIGITS};".encode())
    assert scan_device(image, [DIGITS], [source]) == [RawHit((7 << 20) + len("plate="))]


KEEP = [ncic_line(f"V{i:09d}", f"7KEEP{i:03d}") for i in range(60)]


def test_a_removed_digit_plate_after_a_character_json_escapes_is_found_in_the_access_log(
    relaxed: Settings, drop: Drop
) -> None:
    """The access log is JSON written in ASCII: a purpose typed as ``N°3456789`` is
    logged ``N\\u00b03456789``. Its raw bytes showed the digit ``0`` before the plate,
    so the line was passed over as a NIC's digits and the plate outside the queried
    element was never seen: the purge passed."""
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000007", DIGITS)]))
    ingest_source(relaxed, "ncic")
    config = str(relaxed.data_dir.parent / "hotlist.toml")
    for purpose in (f"vol N°{DIGITS}", f"stolen\u00a0{DIGITS}"):  # refused, and logged
        CliRunner().invoke(
            app,
            [
                *("lookup", "7KEEP001", "--user", "ofc.lee", "--org", "CA0190000"),
                *("--purpose", purpose, "-c", config),
            ],
        )
    log = audit.log_path(relaxed.data_dir).read_bytes()
    assert b"\\u00b0" + DIGITS.encode() in log and b"\\u00a0" + DIGITS.encode() in log
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(relaxed, "ncic")
    with pytest.raises(PurgeIncomplete) as failed:
        purge(relaxed, None)
    places = [f.place.rsplit(":", 1)[-1] for f in failed.value.verification.findings]
    assert places == ["purpose", "purpose"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_digit_plate_written_after_an_escape_is_found_in_raw_bytes(
    store: Settings, tmp_path: Path, encoding: str
) -> None:
    """JSON in ASCII, a Python repr and a URL write a character as its code; the code's
    last hexadecimal digit is no digit beside the plate. The digits of a NIC, a count or
    a UUID stay no finding, escapes or not."""
    root = tmp_path / "copies"
    root.mkdir()
    leaks = {
        "prefect.json": json.dumps({"note": f"plaque N°{DIGITS}"}),
        "nbsp.json": json.dumps({"note": f"stolen\u00a0{DIGITS}"}),
        "repr.log": repr({"note": f"\xa0{DIGITS}"}),
        "url.log": f"GET /lookup?q=CA%20{DIGITS} 200",
        "emoji.json": json.dumps(f"\U0001f697{DIGITS}"),
    }
    noise = {
        "report.json": json.dumps({"nic": f"N°{NIC}", "took": f"\u00a00.{DIGITS}1 s"}),
        "url.txt": f"GET /runs/%2012{DIGITS}0 and %20{DIGITS}a HTTP/1.1",
    }
    for name, text in {**leaks, **noise}.items():
        (root / name).write_bytes(text.encode(encoding))
    result = verify(store.data_dir, None, [DIGITS], extra_roots=[root])
    assert {Path(f.place).name for f in result.findings} == set(leaks)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_plate_read_one_byte_off_at_the_end_of_a_file_is_judged_by_the_half_character(
    store: Settings, tmp_path: Path, encoding: str
) -> None:
    """A plate's UTF-16-LE bytes also occur one byte into its UTF-16-BE text, and end one
    byte into the character after it: at the end of a file only that byte is left, and
    the hexadecimal ``a`` after a digit plate was taken for nothing at all."""
    root = tmp_path / "copies"
    root.mkdir()
    noise = {"ids.txt": f"run 12-{DIGITS}a", "url.txt": f"GET /x/%20{DIGITS}0"}
    leaks = {"end.txt": f"plate {DIGITS}", "alone.txt": DIGITS, "bom.txt": f"\ufeff{DIGITS}"}
    for name, text in {**noise, **leaks}.items():
        (root / name).write_bytes(text.encode(encoding))
    result = verify(store.data_dir, None, [DIGITS], extra_roots=[root])
    assert {Path(f.place).name for f in result.findings} == set(leaks)


def _look_up(settings: Settings, plate: str) -> None:
    done = CliRunner().invoke(
        app,
        [
            *("lookup", plate, "--user", "ofc.lee", "--org", "CA0190000"),
            *("--purpose", "patrol", "-c", str(settings.data_dir.parent / "hotlist.toml")),
        ],
    )
    assert done.exit_code == 0, done.stderr


@pytest.mark.parametrize("vanity", ["PRIMARY", "INTEGER", "CREATE", "TABLE"])
def test_a_removed_vanity_plate_spelling_a_word_of_a_sqlite_schema_does_not_fail_the_purge(
    relaxed: Settings, drop: Drop, vanity: str
) -> None:
    """The access log's anchors (``audit-anchors/anchors.sqlite``, made by the first
    lookup and kept) hold their schema as text: ``CREATE TABLE anchors (... INTEGER
    PRIMARY KEY ...)``. A removed vanity plate spelling one of its words stood in those
    raw bytes, and every later purge failed, for good."""
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000007", vanity)]))
    ingest_source(relaxed, "ncic")
    _look_up(relaxed, "7KEEP001")
    anchors = relaxed.data_dir / "audit-anchors" / "anchors.sqlite"
    assert vanity.encode() in anchors.read_bytes()
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(relaxed, "ncic")
    result = purge(relaxed, None)
    assert result.verification.ok, result.verification.findings
    assert result.purged == 1


def test_a_vanity_plate_in_a_sqlite_file_outside_its_schema_text_is_still_found(
    store: Settings, tmp_path: Path
) -> None:
    """Only the whole text of the database's own statements is left out: the plate as a
    value, as a deleted row's bytes, or in a statement of some other database is found."""
    root = tmp_path / "copies"
    root.mkdir()
    ddl = "CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)"

    def database(name: str, notes: list[str], delete: bool = False) -> None:
        con = sqlite3.connect(root / name)
        con.execute("PRAGMA secure_delete = OFF")
        con.execute(ddl)
        con.executemany("INSERT INTO notes (note) VALUES (?)", [(n,) for n in notes])
        if delete:
            con.execute("DELETE FROM notes")
        con.commit()
        con.close()

    database("clean.sqlite", ["7KEEP001", "plate 3456789 of a kept record"])
    database("value.sqlite", ["7KEEP001", "seen PRIMARY at 10:02"])
    database("deleted.sqlite", ["seen PRIMARY at 10:02", "x" * 200], delete=True)
    (root / "ddl.txt").write_text(ddl)  # no database of its own: its words are a text's
    result = verify(store.data_dir, None, ["PRIMARY", "INTEGER"], extra_roots=[root])
    assert {Path(f.place).name for f in result.findings} == {
        "value.sqlite",
        "deleted.sqlite",
        "ddl.txt",
    }


def test_a_removed_vanity_plate_spelling_a_schema_word_passes_the_raw_device_search(
    on_device: tuple[Settings, Path], drop: Drop
) -> None:
    """``[purge] raw_device`` reads the device under data_dir whole: the anchors' schema
    text is on it, so a removed ``PRIMARY`` failed every purge there too."""
    settings, image = on_device
    mount = settings.data_dir.parent
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000007", "PRIMARY")]))
    ingest_source(settings, "ncic")
    _look_up(settings, "7KEEP001")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(settings, "ncic")
    subprocess.run(["sync"], check=True)
    result = purge(settings, None)
    assert result.verification.ok, result.verification.findings
    assert result.purged == 1
    # A copy beside the schema's text is still found on the device.
    assert scan_device(image, ["PRIMARY"], [], schemas_under(settings.data_dir)) == []
    (mount / "note.txt").write_text("stolen: PRIMARY\n")
    subprocess.run(["sync"], check=True)
    [hit] = scan_device(image, ["PRIMARY"], [], schemas_under(settings.data_dir))
    with open(image, "rb") as fh:
        fh.seek(hit.offset - len("stolen: "))
        assert fh.read(32).startswith(b"stolen: PRIMARY\n")


@pytest.mark.parametrize("control", ["\f", "\b"])
def test_a_digit_plate_after_a_json_form_feed_or_backspace_is_found_in_the_access_log(
    tmp_path: Path, control: str
) -> None:
    """JSON writes a form feed ``\\f`` and a backspace ``\\b``: hexadecimal letters in
    the raw bytes, the line passed over, the plate in the parsed field never looked at."""
    log = tmp_path / "access-2026-12.jsonl"
    record = {"seq": 3, "data_element": "7KEEP001", "purpose": f"stolen{control}{DIGITS}"}
    log.write_text(json.dumps(record) + "\n")
    found = AccessLogSearch([DIGITS], []).scan(log)
    assert [where for where, _ in found] == ["line 1:purpose"]


def test_a_file_or_zip_member_named_after_a_removed_plate_is_a_finding_that_does_not_name_it(
    relaxed: Settings, drop: Drop
) -> None:
    """Only the bytes of files were searched: a file named after a removed plate (an
    export, a result stored under a key made of a task's parameter) and a zip member so
    named passed, whatever their bytes. And a finding named its path: the plate went into
    the purge's exception text, which Prefect keeps as the flow run's state message (and
    every later purge would find it there)."""
    drop.put("VEHEXTRT.txt", ncic_file([*KEEP, ncic_line("F000000007", DIGITS)]))
    ingest_source(relaxed, "ncic")
    exports = relaxed.data_dir / "exports"
    exports.mkdir()
    (exports / f"stolen-{DIGITS}.txt").write_text("see the hotlist\n")
    (exports / f"CA{DIGITS}").mkdir()
    (exports / f"CA{DIGITS}" / "notes.txt").write_text(f"plate {DIGITS}\n")
    with zipfile.ZipFile(exports / "evidence.zip", "w") as archive:
        archive.writestr(f"lookups/{DIGITS}.csv", "nothing of it here\n")
        archive.writestr("kept.csv", f"plate,{DIGITS}\n")
    (exports / "run-V123456789.log").write_text("the NIC's digits are no plate\n")
    drop.put("VEHEXTRT.txt", ncic_file(KEEP, stamp="202611221800"))
    ingest_source(relaxed, "ncic")
    with pytest.raises(PurgeIncomplete) as failed:
        purge(relaxed, None)
    assert DIGITS not in str(failed.value)
    findings = failed.value.verification.findings
    assert all(DIGITS not in f.place + f.problem for f in findings)
    assert sorted((f.place.removeprefix(str(exports)), f.problem) for f in findings) == [
        ("/<a name holding content of a removed record>", NAME_HIT),  # stolen-...txt
        ("/<a name holding content of a removed record>", NAME_HIT),  # CA.../notes.txt
        ("/<a name holding content of a removed record>", RAW_HIT),  # and what it holds
        ("/evidence.zip:kept.csv", RAW_HIT),
        ("/evidence.zip:lookups/<a name holding content of a removed record>", MEMBER_HIT),
    ]


def test_the_original_name_a_gzip_header_keeps_is_searched(store: Settings, tmp_path: Path) -> None:
    """``gzip`` keeps the name of the file it compressed in its header, outside the bytes
    it compresses: an export named after a removed plate, renamed once compressed,
    passed."""
    root = tmp_path / "copies"
    root.mkdir()
    for name, original in (("export.gz", f"stolen-{DIGITS}.csv"), ("kept.gz", "kept.csv")):
        with open(root / name, "wb") as raw, gzip.GzipFile(original, "wb", fileobj=raw) as fh:
            fh.write(b"nothing of it here\n")
    assert f"stolen-{DIGITS}.csv".encode() in (root / "export.gz").read_bytes()
    result = verify(store.data_dir, None, [DIGITS], extra_roots=[root])
    assert [(Path(f.place).name, f.problem) for f in result.findings] == [
        (
            "export.gz:gzip header",
            "the original name or comment a gzip header keeps holds content of a removed record",
        )
    ]
