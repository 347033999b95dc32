"""Parse one landed file into candidate entries, quarantined rows and row issues.

The path of a file (docs/formats.md): whole-file checks (:mod:`hotlist.wholefile`) ->
lines (polars, one string column) -> header and trailer checks -> hit-type judgement (a
line is parsed only when it is positively of an allowed hit type; ``N`` records are
dropped before anything is kept) -> fields by the layout -> normalization -> pandera
contracts -> entries / quarantine / issues. Messages and issues name file, line, field
and rule, never a value: values are record content.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import importlib.metadata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandera.polars as pa
import polars as pl
import polars_hash as plh
from pandera.errors import SchemaErrors

from contracts.models import ClewRow, CodeAdvisories, NcicRow
from hotlist import normalize as norm
from hotlist.codes import codes, hit_type_lists
from hotlist.columns import ENTRY_COLUMNS, ISSUE_SCHEMA
from hotlist.layout import FIELD_NAMES, Layout, Marker
from hotlist.lines import fields, read_lines
from hotlist.wholefile import FileRejected as FileRejected
from hotlist.wholefile import check_bytes, check_extract_time

#: Columns of a quarantined row. ``raw_line`` is null for a line that is not positively
#: of an allowed hit type: of such a line only its number, rules and keyed hash are kept.
QUARANTINE_SCHEMA = pl.Schema(
    {
        "line_no": pl.Int64(),
        "raw_line": pl.String(),
        "rules": pl.String(),
        "carry_record_id": pl.String(),
        "carry_plate": pl.String(),
        "carry_state": pl.String(),
        "line_hash": pl.String(),
    }
)
#: The rule of a line whose hit type is none of the file's allowed ones, nor a known one.
UNKNOWN_HIT_TYPE = "record_id.hit_type_unknown"
_CODE_FIELDS = ("plate_type", "make", "style", "colour")
#: Fields a layout may leave out; a blank one is null.
OPTIONAL_FIELDS = tuple(f for f in FIELD_NAMES if f not in ("plate", "state", "record_date"))


@dataclass(frozen=True)
class ParsedFile:
    """What a file holds, sorted into what may load, what is quarantined, and why."""

    name: str
    extract_time: dt.datetime
    record_lines: int
    entries: pl.DataFrame
    quarantine: pl.DataFrame
    issues: pl.DataFrame
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def row_errors(self) -> int:
        return self.quarantine.height

    @property
    def warnings(self) -> int:
        return int((self.issues["severity"] == "warning").sum())


def _marker_time(marker: Marker, text: str) -> dt.datetime | None:
    match = marker.pattern.match(text)
    if match is None:
        return None
    if marker.time_format is None or "time" not in match.groupdict():
        return None
    try:
        naive = dt.datetime.strptime(match["time"], marker.time_format)
    except ValueError:
        return None
    return naive.replace(tzinfo=marker.timezone or dt.UTC)


def _no_second_header(name: str, body: pl.DataFrame, header: Marker) -> None:
    """Refuse a file with a header line after line 1: two extracts run together, whose
    records are of two times (and an NCIC header would read as an ``N`` record)."""
    text = pl.col("text")
    try:  # few lines are candidates; the pattern decides on those, with a mark stripped
        candidates = body.filter(
            text.str.contains(header.pattern.pattern) | text.str.starts_with("\ufeff")
        )
    except pl.exceptions.PolarsError:  # a pattern polars cannot run: every line in Python
        candidates = body
    found = candidates.filter(
        pl.Series(
            [bool(header.pattern.match(t.lstrip("\ufeff"))) for t in candidates["text"]],
            dtype=pl.Boolean,
        )
    )["line_no"]
    if found.len():
        raise FileRejected(
            "header-repeated",
            f"{name} line {found[0]}: a second header line ({found.len()} after line 1): the"
            " file holds more than one extract run together",
        )


def _blank_to_null(name: str) -> pl.Expr:
    return pl.when(pl.col(name) == "").then(None).otherwise(pl.col(name)).alias(name)


def _normalized(
    frame: pl.DataFrame, layout: Layout, feed: str, feed_list: str | None
) -> pl.DataFrame:
    names = set(layout.field_names)
    frame = frame.with_columns(
        pl.lit(None, dtype=pl.String).alias(n) for n in OPTIONAL_FIELDS if n not in names
    )
    frame = frame.with_columns(_blank_to_null(n) for n in OPTIONAL_FIELDS)
    if layout.has_record_id:
        letters = hit_type_lists()
        list_expr = (
            pl.col("record_id")
            .str.slice(0, 1)
            .replace_strict(list(letters), list(letters.values()), default=None)
        )
    else:
        list_expr = pl.lit(feed_list)
    # Codes have few distinct values: normalize each distinct value once, then map.
    coded = {c: _by_distinct(frame[c], norm.code) for c in _CODE_FIELDS}
    ori_prefix = frame["ori"].str.slice(0, 2)
    return frame.select(
        pl.lit(feed).alias("feed"),
        list_expr.alias("list"),
        pl.col("record_id").str.to_uppercase(),
        pl.concat_str(_by_distinct(ori_prefix, norm.code), pl.col("ori").str.slice(2)).alias("ori"),
        pl.col("record_date").str.strptime(pl.Date, "%Y%m%d", strict=False).alias("record_date"),
        norm.plate(pl.col("plate")).alias("plate"),
        pl.col("plate").alias("plate_raw"),
        _by_distinct(frame["state"], norm.state).alias("state"),
        pl.col("state").alias("state_raw"),
        pl.col("county"),
        pl.col("plate_year")
        .str.to_integer(strict=False)
        .cast(pl.Int16, strict=False)
        .alias("plate_year"),
        pl.col("plate_year").alias("plate_year_raw"),
        *(coded[c].alias(c) for c in _CODE_FIELDS if c != "colour"),
        pl.col("vehicle_year")
        .str.to_integer(strict=False)
        .cast(pl.Int16, strict=False)
        .alias("vehicle_year"),
        pl.col("vehicle_year").alias("vehicle_year_raw"),
        pl.col("model").str.to_uppercase(),
        coded["colour"].alias("colour"),
        pl.col("line_no"),
        pl.col("_shape_ok"),
    )


def _by_distinct(values: pl.Series, rule: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """``rule`` applied to each distinct value once, then mapped onto every row."""
    distinct = values.unique().drop_nulls()
    mapped = pl.select(rule(pl.lit(distinct))).to_series()
    return pl.lit(values).replace_strict(distinct, mapped, default=None)


_CHECK_RULES = (
    ("str_matches", "format"),
    ("str_length", "length"),
    ("isin", "unknown_code"),
    ("not_nullable", "missing"),
)


def _rule(column: str, check: str) -> tuple[str, str]:
    """``(field, rule)`` for a pandera failure: ``plate_raw`` + ``str_matches`` -> plate.format."""
    field_name = column.removesuffix("_raw")
    if field_name == "record_date" and check == "not_nullable":
        return field_name, "record_date.invalid"
    for prefix, rule in _CHECK_RULES:
        if check.startswith(prefix):
            return field_name, f"{field_name}.{rule}"
    return field_name, f"{field_name}.{check.split('(')[0]}"


def contract_failures(
    model: type[pa.DataFrameModel], frame: pl.DataFrame, severity: str
) -> pl.DataFrame:
    """Run a contract; return ``(line_no, field, rule, severity)`` per failure.

    The failure values pandera reports are record content: they are dropped here.
    """
    try:
        model.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases.filter(pl.col("index").is_not_null())
        if cases.height == 0:
            raise RuntimeError(f"contract {model.__name__} failed at schema level") from None
        line_nos = frame["line_no"]
        named = [_rule(c, k) for c, k in zip(cases["column"], cases["check"], strict=True)]
        return pl.DataFrame(
            {
                "line_no": line_nos.gather(cases["index"].cast(pl.Int64)),
                "field": [f for f, _ in named],
                "rule": [r for _, r in named],
                "severity": [severity] * cases.height,
            },
            schema=ISSUE_SCHEMA,
        )
    return pl.DataFrame(schema=ISSUE_SCHEMA)


def _issue(frame: pl.DataFrame, fld: str, rule: str, severity: str) -> pl.DataFrame:
    return frame.select(
        pl.col("line_no"),
        pl.lit(fld).alias("field"),
        pl.lit(rule).alias("rule"),
        pl.lit(severity).alias("severity"),
    )


@functools.cache
def _parser_sources() -> tuple[Path, ...]:
    """The files whose content decides how a line is parsed and stored."""
    from hotlist.fingerprint import parser_sources

    return parser_sources()


def read_snapshot(
    path: Path,
    layout: Layout,
    feed: str,
    feed_list: str | None,
    hit_types: frozenset[str],
    fallback_time: dt.datetime,
    *,
    hash_key: bytes | None = None,
    now: dt.datetime | None = None,
) -> Snapshot:
    """Check ``path`` as a whole (bytes, line ends, header, trailer, the file's own time);
    raise :class:`FileRejected` if it is unusable. Its rows are parsed later, chunk by
    chunk (:meth:`Snapshot.chunks`).

    ``hash_key`` (the store's local key) keys the hash that stands for a quarantined line
    (:func:`quarantine_line_hash`); without it that hash is null. ``now`` (default: the
    clock) is what the file's time and its records' dates must not be later than."""
    name = path.name
    now = now or dt.datetime.now(dt.UTC)
    check_bytes(path)
    lines = read_lines(path)
    extract_time: dt.datetime | None = None
    body = lines
    if layout.header is not None:
        first = lines["text"][0] if lines.height else ""
        extract_time = _marker_time(layout.header, first)
        if layout.header.pattern.match(first):
            body = body.slice(1)
            if extract_time is None:
                raise FileRejected("header-time", f"{name} line 1: header time is not a valid time")
        elif layout.header.required:
            raise FileRejected(
                "header-missing",
                f"{name} line 1: expected a header matching {layout.header.pattern.pattern!r}",
            )
        _no_second_header(name, body, layout.header)
    # Blank lines are not records: the trailer counts record lines only.
    blank = pl.col("text").str.strip_chars_start() == ""
    if body.select(blank.any()).item():
        body = body.filter(~blank)
    if layout.trailer is not None:
        last = body["text"][-1] if body.height else ""
        match = layout.trailer.pattern.match(last)
        if match is None:
            if layout.trailer.required:
                raise FileRejected(
                    "trailer-missing",
                    f"{name}: no trailer line matching {layout.trailer.pattern.pattern!r}; the file is incomplete",
                )
        else:
            body = body.slice(0, body.height - 1)
            declared = int(match["count"])
            if declared != body.height:
                raise FileRejected(
                    "trailer-count",
                    f"{name}: trailer declares {declared} records, the file holds {body.height}; the file is incomplete",
                )
    check_extract_time(name, extract_time or fallback_time, now, extract_time is not None)
    return Snapshot(
        name=name,
        extract_time=extract_time or fallback_time,
        record_lines=body.height,
        body=body,
        layout=layout,
        feed=feed,
        feed_list=feed_list,
        hit_types=hit_types,
        hash_key=hash_key,
        now=now,
    )


@dataclass(frozen=True)
class Snapshot:
    """A file that passed the whole-file checks, ready to be parsed chunk by chunk."""

    name: str
    extract_time: dt.datetime
    record_lines: int
    body: pl.DataFrame  # line_no, text of the record lines
    layout: Layout
    feed: str
    feed_list: str | None
    hit_types: frozenset[str]
    #: Keys the hash of a quarantined line; a secret, so never shown.
    hash_key: bytes | None = field(default=None, repr=False, compare=False)
    #: What a record date must not be later than (plus :data:`FUTURE_DATE_TOLERANCE`).
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC), compare=False)

    @property
    def chunk_count(self) -> int:
        """Chunks of :data:`CHUNK_LINES` record lines; at least one, perhaps empty."""
        return max(-(-self.body.height // CHUNK_LINES), 1)

    def chunk_lines(self, index: int) -> pl.DataFrame:
        """The ``index``-th chunk of record lines (``line_no, text``)."""
        return self.body.slice(index * CHUNK_LINES, CHUNK_LINES)

    def chunk(self, index: int) -> ParsedFile:
        """Parse the ``index``-th chunk of record lines (chunks are independent)."""
        return _parse_chunk(
            self.chunk_lines(index),
            self.layout,
            self.feed,
            self.feed_list,
            self.hit_types,
            self.hash_key,
            self.now,
        )

    def restricted(self, line_nos: pl.Series) -> Snapshot:
        """The same file with only the record lines ``line_nos`` left to parse."""
        return dataclasses.replace(
            self, body=self.body.filter(pl.col("line_no").is_in(line_nos.implode()))
        )

    @functools.cached_property
    def parser(self) -> str:
        """What a line's parse depends on besides the line: the feed, its layout and hit
        types, the code tables, the parsing code and its libraries, as one SHA-256.

        A line parsed under the same value gives the same entry and warnings again: the
        store copies those of an unchanged line instead of parsing it again.
        """
        digest = hashlib.sha256()
        for part in (self.feed, self.feed_list, repr(self.layout), sorted(self.hit_types)):
            digest.update(repr(part).encode() + b"\0")
        for package in ("polars", "pandera", "polars-hash", "duckdb"):
            digest.update(f"{package}={importlib.metadata.version(package)}\0".encode())
        for source in _parser_sources():
            digest.update(source.read_bytes() + b"\0")
        return digest.hexdigest()

    def chunks(self) -> Iterator[ParsedFile]:
        """Parse the record lines chunk by chunk, so memory stays bounded."""
        return (self.chunk(i) for i in range(self.chunk_count))


def parse_file(
    path: Path,
    layout: Layout,
    feed: str,
    feed_list: str | None,
    hit_types: frozenset[str],
    fallback_time: dt.datetime,
    *,
    hash_key: bytes | None = None,
    now: dt.datetime | None = None,
) -> ParsedFile:
    """Read a whole file into one :class:`ParsedFile` (the store reads chunk by chunk)."""
    snapshot = read_snapshot(
        path, layout, feed, feed_list, hit_types, fallback_time, hash_key=hash_key, now=now
    )
    chunks = list(snapshot.chunks())
    entries = pl.concat([c.entries for c in chunks])
    # One entry per identity: a later line with the same identity is reported, not loaded.
    duplicate = ~pl.struct(list(layout.identity)).is_first_distinct()
    dupes = entries.filter(duplicate)
    return ParsedFile(
        name=snapshot.name,
        extract_time=snapshot.extract_time,
        record_lines=snapshot.record_lines,
        entries=entries.filter(~duplicate),
        quarantine=pl.concat([c.quarantine for c in chunks]),
        issues=pl.concat([*(c.issues for c in chunks), duplicate_issues(dupes)]).sort("line_no"),
        excluded=sum_excluded([c.excluded for c in chunks]),
    )


def duplicate_issues(dupes: pl.DataFrame) -> pl.DataFrame:
    return _issue(dupes, "identity", "identity.duplicate", "warning")


def sum_excluded(counts: list[dict[str, int]]) -> dict[str, int]:
    excluded: dict[str, int] = {}
    for chunk in counts:
        for key, count in chunk.items():
            excluded[key] = excluded.get(key, 0) + count
    return excluded


#: Lines parsed at a time: bounds the memory of the wide intermediate frames (two chunks
#: are parsed at once: 200k kept a 2M-line ingest under 0.9 GB, 250k took it to 0.95-1.0).
CHUNK_LINES = 200_000


def _parse_chunk(
    body: pl.DataFrame,
    layout: Layout,
    feed: str,
    feed_list: str | None,
    hit_types: frozenset[str],
    hash_key: bytes | None = None,
    now: dt.datetime | None = None,
) -> ParsedFile:
    record_lines = body.height
    excluded: dict[str, int] = {}
    unknown = pl.DataFrame(schema=QUARANTINE_SCHEMA)
    if layout.has_record_id:
        # SB 54: a line is parsed only when it is positively of an allowed hit type, judged
        # on the line as a person reads it (NFKC, no byte order mark, quotes or white space
        # before the letter). The others are dropped before anything is done with them: an
        # immigration violator record or a hit type not configured is counted, and a line
        # of no known hit type is quarantined as its number, rule and keyed hash alone.
        letters = norm.hit_type_letters(_hit_type_text(body, layout))
        allowed = letters.is_in(sorted(hit_types - {"N"}))
        immigration = letters == "N"
        not_configured = letters.is_in(sorted(set(hit_type_lists()) - hit_types - {"N"}))
        excluded["immigration_violator_sb54"] = int(immigration.sum())
        excluded["hit_type_not_configured"] = int(not_configured.sum())
        if not allowed.all():
            dropped = ~(allowed | immigration | not_configured)
            unknown = body.filter(dropped).select(
                pl.col("line_no"),
                pl.lit(None, pl.String).alias("raw_line"),
                pl.lit(UNKNOWN_HIT_TYPE).alias("rules"),
                *(pl.lit(None, pl.String).alias(f"carry_{c}") for c in CARRIED),
                quarantine_line_hash(hash_key),
            )
            body = body.filter(allowed)
    rows = _normalized(fields(body, layout), layout, feed, feed_list)
    # A placeholder plate (NONE, UNK, 000...) written in plate characters is not a hit.
    # The pattern is tested only on the few rows whose plate is a placeholder.
    placeholder = rows["plate"].is_in(sorted(norm.NOT_A_HIT_PLATES)).fill_null(False)
    excluded["plate_not_a_hit"] = 0
    if placeholder.any():
        written = rows["plate_raw"].str.contains(norm.RAW_PLATE_PATTERN).fill_null(False)
        not_a_hit = placeholder & written
        excluded["plate_not_a_hit"] = int(not_a_hit.sum())
        rows = rows.filter(~not_a_hit)
    row_model = NcicRow if layout.has_record_id else ClewRow
    errors = contract_failures(row_model, rows, "error")
    if layout.format != "fixed":  # a fixed-width line always has every field
        shape = _issue(rows.filter(~pl.col("_shape_ok")), "line", "line.field_count", "error")
        errors = pl.concat([shape, errors])
    warnings = pl.concat(
        [
            contract_failures(CodeAdvisories, rows, "warning"),
            _too_long(body, layout),
            _future_dates(rows, now or dt.datetime.now(dt.UTC)),
        ]
    )
    if errors.height and warnings.height:  # a value that is no code is not an unknown one
        warnings = warnings.join(errors, on=["line_no", "field"], how="anti")
    if unknown.height:
        errors = pl.concat([_issue(unknown, "record_id", UNKNOWN_HIT_TYPE, "error"), errors])
    if errors.height:
        bad = pl.col("line_no").is_in(errors["line_no"].unique().implode())
        quarantined, entries = rows.filter(bad), rows.filter(~bad)
    else:  # the common case: no row copied
        quarantined, entries = rows.clear(), rows
    quarantine = (
        quarantined.join(
            errors.group_by("line_no").agg(
                pl.col("rule").unique().sort().str.join(",").alias("rules")
            ),
            on="line_no",
        )
        .join(body.select("line_no", pl.col("text").alias("raw_line")), on="line_no")
        .select(
            "line_no",
            "raw_line",
            "rules",
            *_carry_key(layout),
            quarantine_line_hash(hash_key, pl.col("raw_line")),
        )
    )
    if unknown.height:
        quarantine = pl.concat([quarantine, unknown])
    quarantine = quarantine.cast(QUARANTINE_SCHEMA).sort("line_no")
    return ParsedFile(
        name="",
        extract_time=dt.datetime.min,
        record_lines=record_lines,
        entries=entries.select(ENTRY_COLUMNS),
        quarantine=quarantine,
        issues=pl.concat([errors, warnings]),
        excluded=excluded,
    )


#: How far a record date may lie after today (UTC): the local date of an agency west of
#: Greenwich can be a day behind, one east of it a day ahead.
FUTURE_DATE_TOLERANCE = dt.timedelta(days=1)


def _too_long(body: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """``line.too_long`` warnings: a fixed-width line with text past its last field."""
    ends = [f.end for f in layout.fields]
    if layout.format != "fixed" or None in ends:
        return pl.DataFrame(schema=ISSUE_SCHEMA)
    last = max(e for e in ends if e is not None)
    longer = body.filter(pl.col("text").str.len_bytes() > last)  # few: cheap to find
    tail = pl.col("text").str.slice(last).str.strip_chars(norm.BLANKS)
    return _issue(longer.filter(tail != ""), "line", "line.too_long", "warning")


def _future_dates(rows: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """``record_date.future`` warnings: a record dated after tomorrow (UTC)."""
    latest = (now.astimezone(dt.UTC) + FUTURE_DATE_TOLERANCE).date()
    return _issue(
        rows.filter(pl.col("record_date") > latest), "record_date", "record_date.future", "warning"
    )


#: Identity columns a quarantined row may carry (``carry_record_id`` ...).
CARRIED = ("record_id", "plate", "state")


def _hit_type_text(body: pl.DataFrame, layout: Layout) -> pl.Series:
    """The text of each line from where its record id starts: the line itself in the
    shipped layouts. Not cut at the field's end: a shifted line is judged all the same."""
    [record_id] = (f for f in layout.fields if f.name == "record_id")
    text = pl.col("text")
    index = layout.field_names.index("record_id")
    if (layout.format == "fixed" and record_id.start == 0) or (layout.format, index) == ("csv", 0):
        return body["text"]
    if layout.format == "fixed":
        return body.select(text.str.slice(record_id.start)).to_series()
    rest = text.str.split(layout.separator).list.slice(index).list.join(layout.separator)
    return body.select(rest).to_series()


def quarantine_line_hash(key: bytes | None, text: pl.Expr | None = None) -> pl.Expr:
    """``line_hash``: HMAC-SHA256 of a line's text (as read, without its line end), keyed
    by the hex text of HMAC-SHA256(local key, "quarantined-line"); null without a key.

    Whoever holds the key and a line of the upstream file can tell whether this is the
    line quarantined; without the key the hash says nothing of it.
    """
    if key is None:
        return pl.lit(None, pl.String).alias("line_hash")
    derived = hmac.new(key, b"quarantined-line", hashlib.sha256).hexdigest()
    line = pl.col("text") if text is None else text
    return plh.CryptographicHashingNameSpace(line).hmac_sha256(key=derived).alias("line_hash")


def _carry_key(layout: Layout) -> list[pl.Expr]:
    """The identity a quarantined row still reveals, so the entry's previous version stays."""
    if layout.has_record_id:
        ok = pl.col("record_id").str.contains(r"^[A-Z][0-9]{9}$").fill_null(False)
        return [
            pl.when(ok).then(pl.col("record_id")).alias("carry_record_id"),
            pl.lit(None, pl.String).alias("carry_plate"),
            pl.lit(None, pl.String).alias("carry_state"),
        ]
    ok = (
        pl.col("plate_raw").str.contains(norm.RAW_PLATE_PATTERN).fill_null(False)
        & (pl.col("plate").str.len_chars() > 0)
        & pl.col("state").is_in(sorted(codes("states")))
    )
    return [
        pl.lit(None, pl.String).alias("carry_record_id"),
        pl.when(ok).then(pl.col("plate")).alias("carry_plate"),
        pl.when(ok).then(pl.col("state")).alias("carry_state"),
    ]
