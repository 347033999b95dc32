"""The shared primitives: the access policy, scrubbing files, and quoting SQL text."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from hotlist import access
from hotlist.scrub import scrub_file, scrub_tree, scrub_unlink
from hotlist.sql import identifier, literal

PURPOSES = ("investigation", "patrol", "stolen-vehicle-recovery", "amber-alert")


@pytest.mark.parametrize(
    "purpose",
    [
        "immigration",
        "ICE-detainer",
        "deportation-support",
        "I.C.E.",
        "\uff49\uff4d\uff4d\uff49\uff47\uff52\uff41\uff54\uff49\uff4f\uff4e",
        "\u0131mm\u0131grat\u0131on",
        "Immigration Enforcement",
        "ice",
        "ero-support",
        "287g",
        "removal",
        "border-patrol",
        "e-r-o",
    ],
)
def test_immigration_enforcement_is_refused_however_spelled(purpose: str) -> None:
    assert access.is_immigration_purpose(purpose)
    assert access.purpose_error(purpose) == access.SB54_REFUSAL
    refused = access.refusal(
        user="u", org="CA0190000", purpose=purpose, purposes=(*PURPOSES, purpose)
    )
    assert refused is not None
    assert refused.reason == access.SB54_REFUSAL


@pytest.mark.parametrize("purpose", ["patrol", "police-service", "notice", "amber-alert"])
def test_words_that_merely_contain_a_term_are_lawful(purpose: str) -> None:
    assert not access.is_immigration_purpose(purpose)
    assert access.purpose_error(purpose) is None


@pytest.mark.parametrize(
    "purpose", ["Patrol!", "patrol--x", "pa trol", "p\u00e1trol", "patr\u043el"]
)
def test_a_purpose_is_a_slug(purpose: str) -> None:
    assert access.purpose_error(purpose) is not None


@pytest.mark.parametrize(
    ("user", "org", "why"),
    [
        ("", "CA0190000", "named"),
        ("   ", "CA0190000", "named"),
        ("jdoe", "", "California"),
        ("jdoe", "NV0190000", "California"),
        ("jdoe", "CA019000", "California"),
        # look-alikes that str.upper() would turn into ASCII: long s, dotless i
        ("jdoe", "CA019000\u017f", "California"),
        ("jdoe", "ca0190\u0131\u01310", "California"),
        ("\u200b", "CA0190000", "named"),  # a zero-width space names nobody
        ("-", "CA0190000", "named"),
    ],
)
def test_a_person_and_a_california_ori_are_required(user: str, org: str, why: str) -> None:
    refused = access.refusal(user=user, org=org, purpose="patrol", purposes=PURPOSES)
    assert refused is not None
    assert why in refused.reason


def test_a_lawful_access_is_granted() -> None:
    assert access.refusal(user="jdoe", org="CA0190000", purpose="patrol", purposes=PURPOSES) is None
    refused = access.refusal(
        user="jdoe",
        org="CA0190000",
        purpose="patrol",
        purposes=PURPOSES,
        agency_may_receive=False,
        agency_kind="federal",
    )
    assert refused is not None
    assert "federal agencies" in refused.reason


def test_scrub_overwrites_in_place_before_unlinking(tmp_path: Path) -> None:
    secret = tmp_path / "content.bin"
    secret.write_bytes(b"7ABC123" * 1000)
    scrub_file(secret)
    assert secret.read_bytes() == bytes(7000)
    scrub_unlink(secret)
    assert not secret.exists()
    scrub_unlink(secret)  # nothing left: not an error


def test_scrub_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "not-ours.txt"
    target.write_bytes(b"keep me")
    link = tmp_path / "link"
    link.symlink_to(target)
    scrub_file(link)
    assert target.read_bytes() == b"keep me"


def test_scrub_tree_erases_every_file(tmp_path: Path) -> None:
    root = tmp_path / "v3"
    (root / "sub").mkdir(parents=True)
    (root / "a").write_bytes(b"x")
    (root / "sub" / "b").write_bytes(b"y")
    scrub_tree(root)
    assert not root.exists()


@pytest.mark.parametrize("name", ["it's", 'a "quoted" dir', "spaces and ünïcode", "x';DROP"])
def test_quoted_paths_and_names_round_trip_through_duckdb(tmp_path: Path, name: str) -> None:
    path = tmp_path / name / "t.duckdb"
    path.parent.mkdir()
    con = duckdb.connect()
    con.execute(f"ATTACH {literal(path)} AS {identifier(name)}")
    con.execute(f"CREATE TABLE {identifier(name)}.main.{identifier(name)} AS SELECT 1 AS x")
    assert con.execute(f"SELECT x FROM {identifier(name)}.main.{identifier(name)}").fetchone() == (  # noqa: S608 (quoted identifiers and constant fragments; values bound)
        1,
    )
    assert path.exists()
