"""pandera contracts (polars backend) for every feed and for the unified hotlist entry.

Three kinds of contract:

* ``*Row`` contracts: a failure is a **row error**; the row is quarantined, never a hit.
  Every code field must have the shape of a code (``codes/shapes.csv``): a value such as
  ``=HYPERLINK(...)`` in a colour is no code, and is never stored where it would be
  published.
* ``CodeAdvisories``: a failure is a **warning**; NCIC adds and retires make, model,
  style and colour codes every quarter, so an unknown code never rejects a row.
* ``HotlistEntry``: what may stand in a published snapshot at all (the last gate).

Code lists come from the CSV tables beside this file, not from Python literals.
"""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from hotlist.codes import code_shapes, codes, hit_type_lists, models
from hotlist.normalize import NOT_A_HIT_PLATES, RAW_PLATE_PATTERN

STATES = sorted(codes("states"))
SHAPES = code_shapes()
NIC_PATTERN = r"^[A-Z][0-9]{9}$"
LOADABLE_LISTS = sorted(
    {name for letter, name in hit_type_lists().items() if letter != "N"}
    | {"stolen_vehicle", "felony_vehicle", "stolen_plate"}
)


def _known_colours(data: PolarsData) -> pl.LazyFrame:
    # A colour is a code or two-tone codes (BLK/WHI). Few distinct values stand in a
    # file, so each is judged once and the rows are matched against the known ones.
    colours = sorted(codes("colours"))
    values = data.lazyframe.select(pl.col(data.key).drop_nulls().unique()).collect()[data.key]
    known = values.filter(values.str.split("/").list.eval(pl.element().is_in(colours)).list.all())
    return data.lazyframe.select(
        pl.col(data.key).is_null() | pl.col(data.key).is_in(known.implode())
    )


def _known_model(data: PolarsData) -> pl.LazyFrame:
    pairs = sorted(models())
    return data.lazyframe.select(
        pl.col("model").is_null()
        # A model is judged only under a known make; an unknown make is its own warning.
        | ~pl.col("make").is_in(sorted(codes("makes"))).fill_null(False)
        | pl.concat_str(pl.col("make"), pl.lit("/"), pl.col("model")).is_in(pairs)
    )


class _RowBase(pa.DataFrameModel):
    plate_raw: str = pa.Field(str_matches=RAW_PLATE_PATTERN)
    plate: str = pa.Field(str_length={"min_value": 1, "max_value": 10})
    state: str = pa.Field(isin=STATES)
    record_date: dt.date = pa.Field(nullable=False)
    ori: str | None = pa.Field(nullable=True, str_matches=SHAPES["ori"])
    county: str | None = pa.Field(nullable=True, str_matches=SHAPES["county"])
    plate_type: str | None = pa.Field(nullable=True, str_matches=SHAPES["plate_type"])
    make: str | None = pa.Field(nullable=True, str_matches=SHAPES["make"])
    model: str | None = pa.Field(nullable=True, str_matches=SHAPES["model"])
    style: str | None = pa.Field(nullable=True, str_matches=SHAPES["style"])
    colour: str | None = pa.Field(nullable=True, str_matches=SHAPES["colour"])

    class Config:
        strict = False


class ClewRow(_RowBase):
    """A CLEW SVS record (svs.tbl, sfr.tbl, slr.tbl) that may become a hit."""


class NcicRow(_RowBase):
    """An NCIC extract record that may become a hit."""

    record_id: str = pa.Field(str_matches=NIC_PATTERN)


class CodeAdvisories(pa.DataFrameModel):
    """Descriptive codes checked against the NCIC code tables; failures are warnings."""

    county: str | None = pa.Field(nullable=True, isin=sorted(codes("counties")))
    plate_year_raw: str | None = pa.Field(nullable=True, str_matches=r"^[0-9]{4}$")
    vehicle_year_raw: str | None = pa.Field(nullable=True, str_matches=r"^[0-9]{4}$")
    plate_type: str | None = pa.Field(nullable=True, isin=sorted(codes("plate_types")))
    make: str | None = pa.Field(nullable=True, isin=sorted(codes("makes")))
    model: str | None = pa.Field(nullable=True)
    style: str | None = pa.Field(nullable=True, isin=sorted(codes("styles")))
    colour: str | None = pa.Field(nullable=True)

    class Config:
        strict = False

    @pa.check("model", name="isin")
    @classmethod
    def known_model(cls, data: PolarsData) -> pl.LazyFrame:
        return _known_model(data)

    @pa.check("colour", name="isin")
    @classmethod
    def known_colour(cls, data: PolarsData) -> pl.LazyFrame:
        return _known_colours(data)


class HotlistEntry(pa.DataFrameModel):
    """An entry of the hotlist: what patrol systems receive and look plates up in.

    Checked on every chunk before it is written; the entry id is not part of the contract,
    as the store derives it from the identity while writing.
    """

    feed: str = pa.Field(isin=["svs", "sfr", "slr", "ncic"])
    list: str = pa.Field(isin=LOADABLE_LISTS)
    record_id: str | None = pa.Field(nullable=True, str_matches=NIC_PATTERN)
    plate: str = pa.Field(
        str_length={"min_value": 1, "max_value": 10}, notin=sorted(NOT_A_HIT_PLATES)
    )
    state: str = pa.Field(isin=STATES)
    record_date: dt.date = pa.Field(nullable=False)

    class Config:
        strict = False

    @pa.dataframe_check(name="never_immigration")
    @classmethod
    def never_immigration(cls, data: PolarsData) -> pl.LazyFrame:
        """SB 54: no NCIC immigration violator record (NIC letter N) is ever a hit."""
        return data.lazyframe.select(
            pl.col("record_id").is_null() | ~pl.col("record_id").str.starts_with("N")
        )
