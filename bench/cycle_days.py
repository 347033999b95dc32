"""The two NCIC days of the cycle benchmark, in two variants, from the benchmark extract.

Day 1 and day 2 start from :func:`hotlist.samples.write_bench_dataset` (day 2: 1 % of the
lines removed, 1 % added). On top of that, day 2 here has **changed** records too: for
0.5 % of the lines present on both days the colour differs (same NIC, plate and state,
so an update, not a removal and an addition).

Two variants of the same two days:

* ``shipped``: the codes as generated, drawn from the shipped code tables (about 1 %
  unknown codes: few warnings);
* ``unknown-models``: the model field (columns 53-56) of about 90 % of the lines replaced
  by a well-shaped code the shipped ``models.csv`` does not hold, derived from the NIC
  (the same on both days). Real NCIC model lists are far longer than the shipped table,
  so a real extract warns on most lines; this variant does.

Everything is column-wise polars over the lines; a variant's files are written once and
reused (the directory name carries the line count).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hotlist.samples import write_bench_dataset

VARIANTS = ("shipped", "unknown-models")
#: Share of the day-2 lines (present on day 1 too) whose colour changes.
CHANGED_SHARE = 0.005
#: Share of lines whose model is replaced by a code the shipped table lacks.
UNKNOWN_MODEL_SHARE = 0.9
NAME = "VEHEXTRT.txt"
_MODEL = (53, 56)
_COLOUR_START = 58


@dataclass(frozen=True)
class CycleDays:
    variant: str
    day1: Path
    day2: Path
    lines_day1: int
    lines_day2: int


def _lines(path: Path) -> tuple[str, pl.DataFrame]:
    frame = pl.read_csv(
        path,
        separator="\x1f",
        quote_char=None,
        has_header=False,
        new_columns=["text"],
        schema={"text": pl.String},
    )
    header = frame["text"][0]
    return header, frame.slice(1)


def _write(path: Path, header: str, body: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii") + b"\n")
        body.select("text").write_csv(fh, include_header=False, quote_style="never")


def _hash(expr: pl.Expr, seed: int) -> pl.Expr:
    return expr.hash(seed=seed)


def _known_models() -> set[str]:
    root = Path(__file__).parent.parent / "contracts" / "codes" / "models.csv"
    with open(root, encoding="utf-8") as fh:
        return {row["code"] for row in csv.DictReader(fh)}


def _unknown_models(body: pl.DataFrame) -> pl.DataFrame:
    """Replace the model of most lines with letter-digit-letter codes the table lacks."""
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    nic = pl.col("text").str.slice(0, 10)
    h = _hash(nic, 11)
    code = pl.concat_str(
        pl.lit(pl.Series(list(letters))).gather((h % len(letters)).cast(pl.Int64)),
        ((h // 23) % 10).cast(pl.String),
        pl.lit(pl.Series(list(letters))).gather(((h // 230) % len(letters)).cast(pl.Int64)),
    )
    replace = (h % 1000) < int(UNKNOWN_MODEL_SHARE * 1000)
    start, end = _MODEL
    text = pl.col("text")
    rewritten = pl.concat_str(text.str.slice(0, start), code, text.str.slice(end))
    body = body.with_columns(pl.when(replace).then(rewritten).otherwise(text).alias("text"))
    known = _known_models()
    share = body.select(
        (~pl.col("text").str.slice(start, end - start).is_in(list(known))).mean()
    ).item()
    assert share > 0.85, f"only {share:.0%} of the models are unknown"
    return body


def _changed(day1: pl.DataFrame, day2: pl.DataFrame) -> pl.DataFrame:
    """Day 2 with the colour of 0.5 % of the lines it shares with day 1 changed."""
    text = pl.col("text")
    both = text.is_in(day1["text"].implode())
    pick = both & ((_hash(text, 29) % 1000) < int(CHANGED_SHARE * 1000))
    colour = text.str.slice(_COLOUR_START, 3)
    other = pl.when(colour == "GRN").then(pl.lit("BLU")).otherwise(pl.lit("GRN"))
    rewritten = pl.concat_str(text.str.slice(0, _COLOUR_START), other)
    return day2.with_columns(pl.when(pick).then(rewritten).otherwise(text).alias("text"))


def _line_count(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def cycle_days(out: Path, lines: int, variant: str) -> CycleDays:
    """Write (or reuse) ``out/cycle-LINES/VARIANT/day{1,2}/VEHEXTRT.txt``."""
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; variants: {', '.join(VARIANTS)}")
    root = out / f"cycle-{lines}" / variant
    day1, day2 = root / "day1" / NAME, root / "day2" / NAME
    if not (day1.exists() and day2.exists()):
        base = write_bench_dataset(out / f"dataset-{lines}", ncic_rows=lines)
        header1, body1 = _lines(base.day1 / NAME)
        header2, body2 = _lines(base.day2 / NAME)
        body2 = _changed(body1, body2)
        if variant == "unknown-models":
            body1, body2 = _unknown_models(body1), _unknown_models(body2)
        _write(day1, header1, body1)
        _write(day2, header2, body2)
    count = [_line_count(p) - 1 for p in (day1, day2)]
    return CycleDays(variant, day1.parent, day2.parent, count[0], count[1])
