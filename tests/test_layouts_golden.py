"""Golden tests: each shipped layout reads a reference file into exactly these entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hotlist.layout import LayoutError, load_layout
from hotlist.parse import parse_file

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
PACIFIC = dt.timezone(dt.timedelta(hours=-8))


def _entries(
    path: Path, layout: str, feed: str, feed_list: str | None = None
) -> list[dict[str, Any]]:
    parsed = parse_file(path, load_layout(layout), feed, feed_list, frozenset("VPFRAMC"), NOW)
    assert parsed.quarantine.height == 0
    return parsed.entries.drop("line_no").to_dicts()


def test_clew_svs_reference_record(tmp_path: Path) -> None:
    path = tmp_path / "svs.tbl"
    path.write_bytes(b"DATE07/02/2018 09:00\r\nABC1234 CA1220190515\r\nTOTAL RECORD 0000001\r\n")
    parsed = parse_file(path, load_layout("clew-svs"), "svs", "stolen_vehicle", frozenset(), NOW)
    assert parsed.extract_time == dt.datetime(2018, 7, 2, 16, 0, tzinfo=dt.UTC)
    [entry] = _entries(path, "clew-svs", "svs", "stolen_vehicle")
    assert entry == {
        "feed": "svs", "list": "stolen_vehicle", "record_id": None, "ori": None,
        "record_date": dt.date(2019, 5, 15), "plate": "ABC1234", "plate_raw": "ABC1234",
        "state": "CA", "state_raw": "CA", "county": "12", "plate_year": None,
        "plate_type": None, "vehicle_year": None, "make": None, "model": None,
        "style": None, "colour": None,
    }  # fmt: skip


def test_ncic_fixed_reference_record(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text(
        "NCIC LPR EXTRACT 201905091200\n"
        "V123456789LA057020020190509AB123456  CA2009MC2009YAMACYLMCBLK\n"
        "P123456780LA057020020190509AB-1234   0H2010C02011D0DGCHA4DBLK/WHI\n"
    )
    first, second = _entries(path, "ncic-fixed", "ncic")
    assert first == {
        "feed": "ncic", "list": "stolen_vehicle", "record_id": "V123456789", "ori": "LA0570200",
        "record_date": dt.date(2019, 5, 9), "plate": "AB123456", "plate_raw": "AB123456",
        "state": "CA", "state_raw": "CA", "county": None, "plate_year": 2009,
        "plate_type": "MC", "vehicle_year": 2009, "make": "YAMA", "model": "CYL",
        "style": "MC", "colour": "BLK",
    }  # fmt: skip
    assert (second["list"], second["plate"], second["plate_raw"]) == (
        "stolen_plate",
        "AB1234",
        "AB-1234",
    )
    assert (second["state"], second["state_raw"], second["plate_type"], second["make"]) == (
        "OH",
        "0H",
        "CO",
        "DODG",
    )
    assert second["colour"] == "BLK/WHI"


def test_ncic_csv_reference_record(tmp_path: Path) -> None:
    path = tmp_path / "VEHEXTRT.txt"
    path.write_text("C845996328,0H0671200,20211122,JFJ4764,0H,2022,TK,2013,CHEV,AVA,PK,CRM\n")
    [entry] = _entries(path, "ncic-csv", "ncic")
    assert entry["list"] == "supervised_release"
    assert (entry["ori"], entry["state"], entry["plate"], entry["vehicle_year"]) == (
        "OH0671200",
        "OH",
        "JFJ4764",
        2013,
    )


def test_an_agency_layout_is_a_data_file(tmp_path: Path) -> None:
    """A state that puts the plate first and pipes between fields needs a file, not code."""
    layout = tmp_path / "our-extract.toml"
    layout.write_text(
        'name = "our-extract"\nformat = "csv"\nseparator = "|"\n'
        'identity = ["record_id", "plate", "state"]\n'
        + "".join(
            f'[[fields]]\nname = "{n}"\n' for n in ("plate", "state", "record_id", "record_date")
        )
    )
    path = tmp_path / "extract.txt"
    path.write_text("7ABC123|CA|V000000001|20240105\n")
    parsed = parse_file(path, load_layout(str(layout)), "ncic", None, frozenset("V"), NOW)
    assert parsed.entries.select("record_id", "plate", "state").row(0) == (
        "V000000001",
        "7ABC123",
        "CA",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nformat = "xml"\nidentity = []\nfields = []\n', "format must be"),
        (
            'name = "x"\nformat = "csv"\nidentity = []\n[[fields]]\nname = "vin"\n',
            "fields[0].name 'vin'",
        ),
        (
            'name = "x"\nformat = "csv"\nidentity = []\n[[fields]]\nname = "plate"\n',
            "required fields missing",
        ),
    ],
)
def test_a_broken_layout_is_refused_with_the_key_named(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(LayoutError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_layout(str(path))


def test_an_unknown_shipped_layout_lists_the_shipped_ones() -> None:
    with pytest.raises(LayoutError, match="ncic-csv"):
        load_layout("ncic-xml")
