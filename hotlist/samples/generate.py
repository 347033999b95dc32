"""Seeded, vectorized generation of realistic CLEW SVS and NCIC records.

Every field of row ``id`` is a pure function of ``(seed, stream, id)``: a splitmix64
hash computed with wrapping ``UInt64`` arithmetic in polars (no per-row Python, no
dependence on polars' own hash, so the same seed gives the same bytes on any version).
Values are drawn from weighted pools built from the code tables in ``contracts/codes``,
in file order, so the data follows the tables an agency edits:

* plates: CA-heavy (``7ABC123``), other states and provinces with their own shapes;
  a few written with a dash, a space or in lower case; a very few junk plates
  (``NONE``, ``UNK``, ``000``) that are not hits;
* states: mostly CA, every state and province of ``states.csv``, and the legacy codes
  ``0H`` (OH), ``PQ`` (QC) and ``NF`` (NL);
* NCIC: NIC = hit-type letter + 9 digits, unique per record (a bijection of the row
  id), hit types V P F R A M plus some W and a few N (immigration violator, never
  loaded); ORIs like ``CA0190000``; make/model/style/colour from the tables with about
  1 % unknown codes (new NCIC codes: warnings) and legacy ``D0DG`` / plate type ``C0``;
  a share of NICs carries a supplemental plate on a second line.

``ncic_universe`` and ``clew_universe`` return the first ``rows`` rows with distinct
identities; a longer universe starts with the shorter one, so "day 2 additions" are
simply the rows after day 1.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import cache
from importlib import resources

import polars as pl

from hotlist.samples.formats import CLEW_COLUMNS, NCIC_COLUMNS, ClewRecord, NcicRecord

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB

#: Letters on generated plates (I, O and Q are left out, as on most US plates).
PLATE_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
#: Plate shapes: N = digit 1-9, L = letter, D = digit 0-9.
CA_PLATE_SHAPES = (("NLLLDDD", 92), ("NLDDDDD", 4), ("NDLDDDD", 2), ("LLLDDD", 2))
OTHER_PLATE_SHAPES = (
    ("LLLDDDD", 45),
    ("LLLDDD", 20),
    ("DDDLLL", 15),
    ("LLDDDDD", 10),
    ("LLLLDDD", 10),
)
#: Placeholder plates seen upstream; not hits (docs/formats.md section 3).
JUNK_PLATES = ("NONE", "UNK", "000")
#: Legacy codes written on purpose: digit 0 for letter O, old province codes.
LEGACY_STATES = ("0H", "PQ", "NF")
#: Codes absent from the tables, as NCIC adds them between table updates: warnings.
UNKNOWN_VEHICLES = (("RIVN", "R1T", "PK"), ("TOYT", "BZ4", "UT"), ("FORD", "MAV", "CU"))
UNKNOWN_COLOURS = ("AQU",)
#: Hit types drawn for NCIC records (per mille); the rest of hit_types.csv is not drawn.
HIT_TYPE_WEIGHTS = {"V": 500, "P": 180, "F": 80, "R": 30, "A": 10, "M": 40, "W": 140, "N": 20}
#: NIC numbers: nine digits, drawn as a bijection of the row (3**18 is prime to 10**9).
NIC_NUMBERS = 1_000_000_000
NIC_MULTIPLIER = 387_420_489
#: Hit types loaded by default; day-2 changes of the demo stay within these.
DEFAULT_HIT_TYPES = frozenset("VPFRAM")

_STATE_WEIGHTS_NCIC = {"CA": 150, "TX": 12, "AZ": 8, "NV": 8, "OR": 6, "WA": 6, "FL": 5, "NY": 4}
_STATE_WEIGHTS_SVS = {"CA": 600, "AZ": 6, "NV": 6, "OR": 5, "TX": 4, "WA": 3}
_COUNTY_WEIGHTS = {
    "19": 25, "37": 8, "30": 7, "33": 6, "36": 6, "01": 5, "43": 5, "34": 5,
    "38": 3, "10": 3, "07": 3, "15": 3, "39": 2, "56": 2, "50": 2,
}  # fmt: skip
_MODEL_STYLES = {
    "AVA": "PK", "SIL": "PK", "F15": "PK", "TAC": "PK", "RAM": "PK", "EXP": "UT", "CRV": "UT",
    "ROG": "UT", "RAV": "UT", "MOY": "UT", "GRA": "UT", "MUS": "2D", "PRI": "HB", "SOU": "HB",
    "ODY": "VN", "OUT": "SW", "CYL": "MC",
}  # fmt: skip
_MODEL_WEIGHTS = {"CIV": 40, "ACC": 35, "CAM": 35, "COR": 30, "SIL": 30, "F15": 30, "ALT": 20}
_MAKE_STYLES = {"FRHT": "TR", "UTIL": "TL", "ISU": "PK", "SUZI": "MC"}
_COLOUR_WEIGHTS = {
    "BLK": 40, "WHI": 40, "SIL": 28, "GRY": 24, "BLU": 16, "RED": 16, "MAR": 4, "GRN": 6,
    "TAN": 4, "GLD": 4, "BRO": 4, "BGE": 4, "DBL": 4, "LBL": 2, "YEL": 2, "ONG": 2,
}  # fmt: skip
_TWO_TONES = {"BLK/WHI": 6, "WHI/BLK": 4, "SIL/BLK": 4, "BLU/WHI": 2, "RED/WHI": 2, "TAN/BRO": 2}
_PLATE_TYPE_WEIGHTS = {"PC": 170, "TK": 12, "CO": 6, "PS": 6, "DL": 2, "AP": 2, "TP": 2, "DV": 2}
_ORI_SUFFIXES = ("0000", "0100", "0200", "0300", "0400", "0500", "0600", "1100", "2100")
#: Maximum age in days of a CLEW date of loss, per list.
_CLEW_MAX_AGE = {"stolen_vehicle": 730, "felony_vehicle": 180, "stolen_plate": 1095}


@cache
def code_table(table: str) -> tuple[dict[str, str], ...]:
    """The rows of ``contracts/codes/<table>.csv``, in file order."""
    ref = resources.files("contracts") / "codes" / f"{table}.csv"
    with ref.open("r", encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def table_codes(table: str) -> tuple[str, ...]:
    return tuple(row["code"] for row in code_table(table))


def _expand(weighted: Iterable[tuple[str, int]]) -> tuple[str, ...]:
    """A pool where each value appears as often as its weight."""
    return tuple(value for value, weight in weighted for _ in range(weight))


@cache
def state_pool(feed: str) -> tuple[str, ...]:
    """Plate states: CA-heavy, every code of states.csv, plus the legacy codes."""
    weights = _STATE_WEIGHTS_NCIC if feed == "ncic" else _STATE_WEIGHTS_SVS
    codes = [(c, weights.get(c, 1)) for c in table_codes("states")]
    return _expand([*codes, *((c, 1) for c in LEGACY_STATES)])


@cache
def province_pool() -> tuple[str, ...]:
    return tuple(r["code"] for r in code_table("states") if r["kind"] == "ca-province")


@cache
def county_pool() -> tuple[str, ...]:
    return _expand((c, _COUNTY_WEIGHTS.get(c, 1)) for c in table_codes("counties"))


@cache
def hit_type_pool() -> tuple[str, ...]:
    return _expand((c, HIT_TYPE_WEIGHTS.get(c, 0)) for c in table_codes("hit_types"))


@cache
def vehicle_pool() -> tuple[tuple[str, str, str], ...]:
    """(make, model, style): table models, makes without a table model, legacy, unknown."""
    makes_with_models = {row["make"] for row in code_table("models")}
    weighted: list[tuple[tuple[str, str, str], int]] = [
        (
            (r["make"], r["code"], _MODEL_STYLES.get(r["code"], "4D")),
            _MODEL_WEIGHTS.get(r["code"], 10),
        )
        for r in code_table("models")
    ]
    weighted += [
        ((make, "", _MAKE_STYLES.get(make, "4D")), 4)
        for make in table_codes("makes")
        if make not in makes_with_models
    ]
    weighted += [(("D0DG", "CHA", "4D"), 2), (("D0DG", "RAM", "PK"), 1)]
    weighted += [(vehicle, 1) for vehicle in UNKNOWN_VEHICLES]
    return tuple(v for v, w in weighted for _ in range(w))


@cache
def colour_pool() -> tuple[str, ...]:
    known = set(table_codes("colours"))
    codes = [(c, _COLOUR_WEIGHTS.get(c, 1)) for c in table_codes("colours")]
    tones = [(t, w) for t, w in _TWO_TONES.items() if set(t.split("/")) <= known]
    return _expand([*codes, *tones, *((c, 1) for c in UNKNOWN_COLOURS)])


@cache
def plate_type_pool() -> tuple[str, ...]:
    codes = [(c, _PLATE_TYPE_WEIGHTS.get(c, 0)) for c in table_codes("plate_types")]
    return _expand([*codes, ("C0", 1)])


def mix64(value: int) -> int:
    """splitmix64's finalizer on a Python int (the reference for ``hash_expr``)."""
    z = value & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


def stream_key(seed: int, stream: str) -> int:
    """The key of one named random stream under ``seed``."""
    return mix64(mix64(seed & _MASK) ^ zlib.crc32(stream.encode()))


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _MASK, dtype=pl.UInt64)


def hash_expr(column: str, key: int) -> pl.Expr:
    """``mix64(id * GOLDEN + key)`` for every row, in wrapping UInt64 arithmetic."""
    z = pl.col(column).cast(pl.UInt64) * _u64(_GOLDEN) + _u64(key)
    z = z.xor(z // _u64(1 << 30)) * _u64(_MIX1)
    z = z.xor(z // _u64(1 << 27)) * _u64(_MIX2)
    return z.xor(z // _u64(1 << 31))


class _Streams:
    """Named uniform streams of one seed, over a row-id column."""

    def __init__(self, seed: int, prefix: str) -> None:
        self.seed = seed
        self.prefix = prefix

    def u(self, name: str, column: str = "id") -> pl.Expr:
        return hash_expr(column, stream_key(self.seed, f"{self.prefix}/{name}"))

    def below(self, name: str, bound: int, column: str = "id") -> pl.Expr:
        return self.u(name, column) % _u64(bound)

    def unit(self, name: str, column: str = "id") -> pl.Expr:
        """Uniform in [0, 1)."""
        return (self.u(name, column) // _u64(1 << 11)).cast(pl.Float64) / float(1 << 53)

    def pick(self, name: str, pool: Sequence[str], column: str = "id") -> pl.Expr:
        return pl.lit(pl.Series(list(pool), dtype=pl.String)).gather(
            self.below(name, len(pool), column)
        )


def _with_plate(frame: pl.DataFrame, r: _Streams, junk_per: int) -> pl.DataFrame:
    """Add ``plate`` for the ``state`` column: CA or other-state shapes, ~0.3 % written
    oddly (dash, space, lower case), one row in ``junk_per`` a junk plate.

    Position ``k`` of every plate is one gather from the alphabet ``letters + digits +
    non-zero digits + ''``, at an index computed from the row's shape and one hash.
    """
    shapes = (*CA_PLATE_SHAPES, *OTHER_PLATE_SHAPES)
    width = max(len(shape) for shape, _ in shapes)
    alphabet = pl.Series([*PLATE_LETTERS, *"0123456789", *"123456789", ""], dtype=pl.String)
    # per kind: (first index in the alphabet, divisor of the hash, radix)
    kinds = {"L": (0, 1, 23), "D": (23, 23, 10), "N": (33, 230, 9), "": (42, 1, 1)}

    def bucket(weighted: Sequence[tuple[str, int]], first: int) -> pl.Expr:
        index: pl.Expr = pl.lit(first, dtype=pl.UInt64)
        lower = 0
        for _, weight in weighted[:-1]:
            lower += weight
            index = index + (pl.col("_choice") >= lower).cast(pl.UInt64)
        return index

    frame = frame.with_columns(r.below("plate-shape", 100).alias("_choice"))
    frame = frame.with_columns(
        pl.when(pl.col("state") == "CA")
        .then(bucket(CA_PLATE_SHAPES, 0))
        .otherwise(bucket(OTHER_PLATE_SHAPES, len(CA_PLATE_SHAPES)))
        .alias("_shape"),
        *(r.u(f"plate-{k}").alias(f"_u{k}") for k in range(width)),
    )
    chars = []
    for k in range(width):
        spec = [kinds[shape[k] if k < len(shape) else ""] for shape, _ in shapes]
        first, divisor, radix = (pl.Series([s[i] for s in spec], dtype=pl.UInt64) for i in range(3))
        shape = pl.col("_shape")
        index = pl.lit(first).gather(shape) + (
            pl.col(f"_u{k}") // pl.lit(divisor).gather(shape)
        ) % pl.lit(radix).gather(shape)
        chars.append(pl.lit(alphabet).gather(index))
    frame = frame.with_columns(
        pl.concat_str(chars).alias("_plate"), r.below("plate-style", 1000).alias("_style")
    )
    plate, style = pl.col("_plate"), pl.col("_style")
    written = (
        pl.when(style == 0)
        .then(pl.concat_str([plate.str.slice(0, 3), pl.lit("-"), plate.str.slice(3)]))
        .when(style == 1)
        .then(pl.concat_str([plate.str.slice(0, 4), pl.lit(" "), plate.str.slice(4)]))
        .when(style == 2)
        .then(plate.str.to_lowercase())
        .otherwise(plate)
    )
    junk = r.below("junk", junk_per) == 0
    frame = frame.with_columns(
        pl.when(junk).then(r.pick("junk-plate", JUNK_PLATES)).otherwise(written).alias("plate")
    )
    return frame.drop(c for c in frame.columns if c.startswith("_"))


def normalized_plate(expr: pl.Expr) -> pl.Expr:
    """docs/formats.md 3: uppercase, only A-Z0-9 (the generator's own, parser-independent)."""
    return expr.str.to_uppercase().str.replace_all(r"[^A-Z0-9]", "")


def normalized_state(expr: pl.Expr) -> pl.Expr:
    """docs/formats.md 3: digit 0 read as letter O, legacy province aliases."""
    aliases = {
        row["legacy"]: row["code"] for row in code_table("aliases") if row["field"] == "state"
    }
    code = expr.str.strip_chars().str.to_uppercase().str.replace_all("0", "O", literal=True)
    return code.replace(list(aliases), list(aliases.values()))


def _days_before(as_of: datetime, days: pl.Expr) -> pl.Expr:
    return (pl.lit(as_of.date()) - pl.duration(days=days.cast(pl.Int64))).dt.strftime("%Y%m%d")


def _ids(rows: int) -> pl.DataFrame:
    return pl.DataFrame({"id": pl.int_range(0, rows, dtype=pl.UInt64, eager=True)})


def _distinct(
    frame: pl.DataFrame, keys: list[str], rows: int, *, unique_by: str | None = None
) -> pl.DataFrame:
    """The first ``rows`` rows whose normalized identity (``keys``) was not seen before.

    ``unique_by``: a raw column whose unique values already make a row's identity unique
    (the NIC): only rows sharing one are compared, which saves normalizing millions.
    """
    normalizers = {"plate": normalized_plate, "state": normalized_state}
    identity = [normalizers[k](pl.col(k)) if k in normalizers else pl.col(k) for k in keys]
    suspects = frame if unique_by is None else frame.filter(pl.col(unique_by).is_duplicated())
    first = pl.struct(identity).is_first_distinct()
    repeated = suspects.filter(~first)["id"]
    unique = frame.filter(~pl.col("id").is_in(repeated.implode()))
    if unique.height < rows:
        raise RuntimeError(f"only {unique.height} distinct identities for {rows} rows")
    return unique.head(rows)


def _slack(rows: int) -> int:
    return rows + rows // 50 + 64


def ncic_universe(
    seed: int, rows: int, as_of: datetime, *, supplemental_per_mille: int = 10
) -> pl.DataFrame:
    """``rows`` NCIC lines with distinct ``(NIC, plate, state)``: ``id`` + ``NCIC_COLUMNS``.

    An odd row ``id`` is, with probability ``supplemental_per_mille`` / 1000, a
    supplemental plate of row ``id - 1``: same NIC, ORI, date and vehicle, another plate.
    """
    r = _Streams(seed, "ncic")
    nic_offset = stream_key(seed, "ncic/nic-offset") % NIC_NUMBERS
    odd = pl.col("id") % _u64(2) == 1
    supplemental = odd & (r.below("supplemental", 1000) < supplemental_per_mille)
    frame = _ids(_slack(rows)).with_columns(
        pl.when(supplemental).then(pl.col("id") - 1).otherwise(pl.col("id")).alias("nic_row")
    )
    n = "nic_row"  # fields of the record (shared by its lines) are drawn on nic_row

    def plate_state(column: str) -> pl.Expr:
        return (
            pl.when(pl.col("hit_type") == "R")
            .then(r.pick("province", province_pool(), column))
            .otherwise(r.pick("state", state_pool("ncic"), column))
        )

    frame = frame.with_columns(
        r.pick("hit-type", hit_type_pool(), n).alias("hit_type"),
        # a bijection of nic_row onto 9 digits: NICs never collide
        ((pl.col(n) * _u64(NIC_MULTIPLIER) + _u64(nic_offset)) % _u64(NIC_NUMBERS)).alias(
            "nic_number"
        ),
        r.below("vehicle", len(vehicle_pool()), n).alias("vehicle"),
    )
    home = plate_state(n)  # the state of the record's first line: mostly the agency's too
    frame = frame.with_columns(
        plate_state("id").alias("state"),
        pl.when(r.below("ori-home", 100, n) < 85)
        .then(home)
        .otherwise(r.pick("ori-state", state_pool("ncic"), n))
        .alias("ori_state"),
    )
    frame = _with_plate(frame, r, junk_per=25_000)
    vehicles = vehicle_pool()
    make, model, style = (pl.Series([v[i] for v in vehicles], dtype=pl.String) for i in range(3))
    style_of = pl.lit(style).gather(pl.col("vehicle"))
    plate_type = (
        pl.when(style_of == "MC")
        .then(pl.lit("MC"))
        .when(style_of == "TL")
        .then(pl.lit("TL"))
        .otherwise(r.pick("plate-type", plate_type_pool()))
    )
    ori_county = (
        pl.when(pl.col("ori_state") == "CA")
        .then(r.pick("ori-county", county_pool(), n))
        .otherwise((r.below("ori-county", 99, n) + 1).cast(pl.String).str.zfill(2))
    )
    age, vehicle_age = r.unit("record-age", n), r.unit("vehicle-age", n)
    vehicle_year = (as_of.year + 1 - (vehicle_age * vehicle_age * 31).floor()).cast(pl.Int64)
    frame = frame.with_columns(
        pl.concat_str(
            [pl.col("hit_type"), pl.col("nic_number").cast(pl.String).str.zfill(9)]
        ).alias("nic"),
        pl.concat_str(
            [pl.col("ori_state"), pl.lit("0"), ori_county, r.pick("ori-suffix", _ORI_SUFFIXES, n)]
        ).alias("ori"),
        _days_before(as_of, (age * age * 5479).floor()).alias("record_date"),
        pl.when(r.below("plate-year-blank", 100) < 35)
        .then(pl.lit(""))
        .otherwise((r.below("plate-year", 4) + (as_of.year - 1)).cast(pl.String))
        .alias("plate_year"),
        plate_type.alias("plate_type"),
        pl.when(r.below("vehicle-year-blank", 100, n) < 4)
        .then(pl.lit(""))
        .otherwise(vehicle_year.cast(pl.String))
        .alias("vehicle_year"),
        pl.lit(make).gather(pl.col("vehicle")).alias("make"),
        pl.lit(model).gather(pl.col("vehicle")).alias("model"),
        style_of.alias("style"),
        r.pick("colour", colour_pool(), n).alias("colour"),
    )
    frame = frame.select("id", *NCIC_COLUMNS)
    return _distinct(frame, ["nic", "plate", "state"], rows, unique_by="nic")


def clew_universe(list_name: str, seed: int, rows: int, as_of: datetime) -> pl.DataFrame:
    """``rows`` entries of one SVS list with distinct ``(plate, state)``: ``id`` + ``CLEW_COLUMNS``."""
    r = _Streams(seed, f"clew/{list_name}")
    age = r.unit("loss-age")
    max_age = _CLEW_MAX_AGE.get(list_name, 730)
    frame = _ids(_slack(rows)).with_columns(r.pick("state", state_pool("svs")).alias("state"))
    frame = _with_plate(frame, r, junk_per=50_000).with_columns(
        r.pick("county", county_pool()).alias("county"),
        _days_before(as_of, (age * age * max_age).floor()).alias("loss_date"),
    )
    return _distinct(frame.select("id", *CLEW_COLUMNS), ["plate", "state"], rows)


def _date(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


def _year(text: str) -> int | None:
    return int(text) if text else None


def ncic_records(frame: pl.DataFrame) -> list[NcicRecord]:
    """The rows of an NCIC frame of text fields as records."""
    return [
        NcicRecord(
            nic=row["nic"],
            ori=row["ori"],
            record_date=_date(row["record_date"]),
            plate=row["plate"],
            state=row["state"],
            plate_year=_year(row["plate_year"]),
            plate_type=row["plate_type"],
            vehicle_year=_year(row["vehicle_year"]),
            make=row["make"],
            model=row["model"],
            style=row["style"],
            colour=row["colour"],
        )
        for row in frame.select(NCIC_COLUMNS).iter_rows(named=True)
    ]


def clew_records(frame: pl.DataFrame) -> list[ClewRecord]:
    """The rows of a CLEW frame of text fields as records."""
    return [
        ClewRecord(plate, state, county, _date(loss))
        for plate, state, county, loss in frame.select(CLEW_COLUMNS).iter_rows()
    ]


def generate_ncic(rows: int, seed: int, as_of: datetime) -> list[NcicRecord]:
    """``rows`` realistic NCIC extract lines (see the module docstring)."""
    return ncic_records(ncic_universe(seed, rows, as_of))


def generate_clew(list_name: str, rows: int, seed: int, as_of: datetime) -> list[ClewRecord]:
    """``rows`` realistic entries of the SVS list ``list_name`` (``stolen_vehicle``...)."""
    return clew_records(clew_universe(list_name, seed, rows, as_of))
