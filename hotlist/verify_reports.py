"""The purge runs' own deletion reports, verified as the structures they are.

Every purge run writes ``reports/deletions-runNNNNNN.json`` and ``.html`` (mode 0600),
and they are kept: they are what compliance reviewers inspect. They hold no deleted
content (a removed record is named by its NIC or a keyed hash), but they are full of
numbers and times the system computed: counts (``"removed_records": 16817``), byte sizes,
sequence numbers, ``2026-12-22T14:05:09Z``. Searched as raw bytes, a removed plate equal
to one of them (``16817``, ``22T14``) is a finding that never goes away, so every later
purge failed, for good.

So a run report is read as written, and every value judged by what it is:

* the JSON must be exactly what :func:`hotlist.reports.render.render_json` writes for
  the summary and records it parses to (written again, byte for byte): a duplicated key,
  an added field, a changed type, another encoding all make it no run report;
* a number where the report writes a count or a measure (:data:`COUNTS`) is that count;
  any other number is judged as its text;
* a time where the report writes one (:data:`TIMES`), in the one form it writes them, is
  a time; times inside a text are taken out of it before the text is judged;
* the lines written from a run's figures alone (each verification's statement, the
  overall verdict, the access log anchor's place) must be exactly what those figures
  write; then they hold nothing else;
* every other text (a record's name and reason, the copies' names, keys) is judged by
  the chance rule, as free text is (:func:`~hotlist.scan.holding`);
* the page must be exactly what :func:`~hotlist.reports.render.render_html` writes from
  that JSON; then it holds what the JSON holds, judged there.

A report that is not as written (edited, truncated, written by another version) is
searched as raw bytes, as every other file is: nothing is passed over.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from hotlist.chance import ISO_TIME
from hotlist.scan import holding

#: A purge run's report files, under ``data_dir/reports``.
RUN_REPORT = re.compile(r"deletions-run(\d{6,})\.(json|html)")
#: Where a report writes a number it computed (a count, a size, a duration, a limit): the
#: place of the number in the summary, by its keys, a list's items as ``0``; the counts per
#: source (``by_source``) whatever their names. A number anywhere else, under whatever key
#: (``"x": {"bytes": 16817}``), is judged as its text.
COUNTS = frozenset({
    *((k,) for k in (
        "removed_records", "plates", "purged", "outstanding", "median_detection_to_purge_s",
        "max_detection_to_purge_s", "sla_hours", "past_sla", "consumer_sla_hours",
        "copies_outstanding", "copies_overdue", "purge_run",
    )),
    ("by_source", "*"),
    *(("verifications", 0, k) for k in (
        "purge_run", "records_searched_for", "places_searched", "files", "duckdb_files",
        "bytes", "findings",
    )),
    ("verifications", 0, "replicas", 0, "serving_version"),
    ("access_log_anchor", "seq"),
})  # fmt: skip
#: Keys under which a report writes a time, always as ISO 8601 UTC to the second.
TIMES = frozenset(
    {"generated_at", "finished_at", "at", "detected_at", "purged_at", "last_heartbeat"}
)
_ISO = ISO_TIME.pattern
#: The records' fields and types, in the order the report writes them.
RECORD_SCHEMA = {
    "source": pl.String, "feed": pl.String, "list": pl.String, "record": pl.String,
    "plates": pl.Int64, "reason": pl.String, "detected_at": pl.String,
    "purged_at": pl.String, "latency_s": pl.Float64, "status": pl.String,
    "purge_run": pl.Int64, "copies_purged": pl.String, "outstanding_copies": pl.String,
}  # fmt: skip
_HEAD, _BODY, _END = '{"summary": ', ',\n"records": [\n', "\n]}\n"
HIT = "holds content of a removed record"

Hits = list[tuple[str, str]]


def is_run_report(path: Path, reports: Path) -> bool:
    """Whether ``path`` is named as a purge run's report in the reports directory."""
    return path.parent == reports and RUN_REPORT.fullmatch(path.name) is not None


def scan_report(path: Path, markers: list[str]) -> Hits | None:
    """Where a run report holds one of ``markers`` (plates of at least
    :data:`~hotlist.scan.MIN_SCAN_LEN` characters); ``None`` when the file is not a run
    report as this project writes it: the caller then searches its bytes."""
    name = RUN_REPORT.fullmatch(path.name)
    if name is None:
        return None
    if not markers:  # nothing a raw search would look for either
        return []
    json_path = path.with_suffix(".json")
    try:
        # A regular file only: a FIFO or a link to a device there would never end.
        parsed = read_report(json_path.read_bytes()) if json_path.is_file() else None
        if parsed is None:
            return None
        summary, records = parsed
        if name.group(2) == "html" and not _rendered(path, summary, records):
            return None
        return judge(summary, records, markers)
    except (RecursionError, UnicodeEncodeError):
        # Nested deeper than the report's writer writes, or a text no UTF-8 can hold
        # (a lone surrogate, written ``\ud800``): no run report.
        return None


def read_report(data: bytes) -> tuple[dict[str, Any], pl.DataFrame] | None:
    """The summary and records of a run report's JSON, if the bytes are exactly what the
    report writes for them; otherwise ``None``."""
    from hotlist.reports.render import render_json

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    head, sep, rest = text.partition(_BODY)
    if not sep or not head.startswith(_HEAD) or not rest.endswith(_END):
        return None
    try:
        summary = json.loads(head.removeprefix(_HEAD))
        body = rest.removesuffix(_END)
        # JSON strings hold no raw newline: the lines are the records.
        records = pl.read_ndjson(
            io.StringIO(body.replace(",\n", "\n")), schema=RECORD_SCHEMA
        ) if body else pl.DataFrame(schema=RECORD_SCHEMA)  # fmt: skip
    except (ValueError, pl.exceptions.PolarsError):
        return None
    if not isinstance(summary, dict):
        return None
    try:
        again = render_json(_rows(records), summary)
    except (KeyError, TypeError, ValueError, pl.exceptions.PolarsError):
        return None
    return (summary, records) if again == text else None


def _rows(records: pl.DataFrame) -> pl.DataFrame:
    """The records as the report's writer holds them: times as UTC datetimes."""
    return records.with_columns(
        pl.col("detected_at", "purged_at").str.strptime(
            pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%SZ", strict=True
        )
    )


def _rendered(path: Path, summary: dict[str, Any], records: pl.DataFrame) -> bool:
    """Whether the page at ``path`` is exactly the one its JSON renders to."""
    from hotlist.reports.render import render_html

    run = summary.get("purge_run")
    if not isinstance(run, int):
        return False
    try:
        page = render_html(_rows(records), summary, f"Deletion report, purge run {run}")
    except (KeyError, TypeError, ValueError, pl.exceptions.PolarsError):
        return False
    return page.encode() == path.read_bytes()


def judge(summary: dict[str, Any], records: pl.DataFrame, markers: list[str]) -> Hits:
    """Where the report's values hold a marker, each value judged by what it is."""
    if not markers:
        return []
    places, texts = [], []
    for place, text in _texts(summary, "summary"):
        places.append(place)
        texts.append(ISO_TIME.sub(" ", text))
    hits: Hits = []
    found = holding(markers, pl.Series(texts, dtype=pl.String)).to_list()
    hits += [(place, f"{HIT} (a value of the report)") for place, hit in zip(places, found, strict=True) if hit]  # fmt: skip
    for column, dtype in RECORD_SCHEMA.items():
        if dtype != pl.String:
            continue  # a count (plates, purge run) or a measure (latency)
        values = records[column]
        if column in TIMES:  # a time as written, or judged as text
            written = pl.col(column).str.contains(f"^{_ISO}$")
            values = records.select(
                pl.when(written).then(None).otherwise(pl.col(column)).alias(column)
            )[column]
        rows = holding(markers, values.str.replace_all(_ISO, " ")).arg_true()
        if rows.len():
            hits.append(
                (
                    f"records.{column}",
                    f"{HIT} ({rows.len()} records; the first is record {rows[0] + 1})",
                )
            )
    return hits


def _texts(summary: Any, place: str) -> Iterator[tuple[str, str]]:
    """Every text of the summary to be judged, with where it stands: its keys, strings,
    and numbers that are no count (:data:`COUNTS`); lines written from figures alone are
    checked against those figures instead."""
    run = summary.get("purge_run") if isinstance(summary, dict) else None
    return _values(summary, place, (), _anchor_places(run))


def _anchor_places(run: Any) -> frozenset[str]:
    """What a run's report writes as its access log anchor's place: the run's number
    (grouped; before 2026-12-04 as it was), its report written then or late."""
    if not isinstance(run, int) or isinstance(run, bool):
        return frozenset()
    return frozenset(
        f"purge run {number}{late}"
        for number in (f"{run:,}", str(run))
        for late in ("", ", its report written late")
    )


Shape = tuple[str | int, ...]


def _values(
    value: Any, place: str, shape: Shape, anchor_places: frozenset[str]
) -> Iterator[tuple[str, str]]:
    """:func:`_texts` of a value at ``place``, whose keys from the summary are ``shape``;
    the anchor's place is no text where it is one of ``anchor_places``."""
    from hotlist.reports.deletions import overall, statement

    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{place}.{k}", str(k)
            if k == "statement" and isinstance(v, str) and _written(statement, value, v):
                continue
            if (
                k == "verification"
                and isinstance(v, str)
                and _written(overall, value.get("verifications"), v)
            ):
                continue
            at = (*shape, "*" if shape == ("by_source",) else str(k))
            if at == ("access_log_anchor", "place") and isinstance(v, str) and v in anchor_places:
                continue
            yield from _values(v, f"{place}.{k}", at, anchor_places)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _values(item, f"{place}[{i}]", (*shape, 0), anchor_places)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        if shape not in COUNTS:
            yield place, json.dumps(value)
    elif isinstance(value, str) and not (
        shape and shape[-1] in TIMES and ISO_TIME.fullmatch(value)
    ):
        yield place, value


def _written(write: Any, figures: Any, line: str) -> bool:
    """Whether ``line`` is exactly what ``write`` writes from ``figures``."""
    try:
        return bool(write(figures) == line)
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError):
        return False
