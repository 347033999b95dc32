"""The NIC format, in one place (hotlist/nic.py), and the NICs an operator gives ``purge``."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hotlist.cli import app
from hotlist.config import Settings
from hotlist.nic import NIC_PATTERN, is_nic, parse_nic
from tests.builders import Drop
from tests.cli_support import config_of, load_sample

runner = CliRunner()

nics = st.builds(
    lambda letter, digits: letter + digits,
    st.sampled_from(string.ascii_uppercase),
    st.text(string.digits, min_size=9, max_size=9),
)


@given(nics, st.sampled_from(["", " ", "\t"]), st.booleans())
def test_a_nic_as_typed_is_read_in_upper_case(nic: str, pad: str, lower: bool) -> None:
    typed = pad + (nic.lower() if lower else nic) + pad
    assert parse_nic(typed) == nic
    assert is_nic(nic)


@given(st.text(max_size=12))
def test_only_an_ascii_letter_and_nine_ascii_digits_are_a_nic(text: str) -> None:
    parsed = parse_nic(text)
    if parsed is not None:
        assert parsed.isascii()
        assert len(parsed) == 10 and parsed[0] in string.ascii_uppercase
        assert set(parsed[1:]) <= set(string.digits)


@pytest.mark.parametrize(
    "text",
    [
        "V\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",  # Arabic-Indic digits
        "\u0131000000001",  # dotless i: upper-cases to I
        "\uff36000000001",  # full-width V
        "V00000000",  # 8 digits
        "V000000001\n",  # is_nic: no trailing newline
        "VV00000001",
    ],
)
def test_look_alikes_are_not_nics(text: str) -> None:
    assert not is_nic(text)
    if not text.endswith("\n"):
        assert parse_nic(text) is None


def test_the_pattern_for_contracts_says_the_same() -> None:
    import re

    assert re.match(NIC_PATTERN, "V000000001")
    assert not re.match(NIC_PATTERN, "v000000001")


def _purge(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["purge", "-c", config_of(settings), "--reason", "court order", "--requested-by",
         "clerk", *args],
    )  # fmt: skip
    return result.exit_code, result.stderr


def test_a_manual_purge_refuses_a_look_alike_nic_naming_where_it_stands(
    settings: Settings, drop: Drop
) -> None:
    load_sample(settings, drop)
    arabic = "V" + "".join(chr(0x0660 + int(d)) for d in "000000001")
    code, stderr = _purge(settings, "--nic", "V000000001", "--nic", arabic)
    assert code == 2
    assert "--nic #2" in stderr
    assert arabic not in stderr


def test_a_bad_line_of_a_nic_file_is_named_by_its_line(
    settings: Settings, drop: Drop, tmp_path: Path
) -> None:
    load_sample(settings, drop)
    nic_file = tmp_path / "nics.txt"
    nic_file.write_text("# court order 42\nV000000001\n\nP00000002\n")
    code, stderr = _purge(settings, "--nic-file", str(nic_file))
    assert code == 2
    assert f"{nic_file} line 4" in stderr
    code, stderr = _purge(settings, "--nic-file", str(tmp_path / "missing.txt"))
    assert code == 2
    assert "cannot read --nic-file" in stderr
