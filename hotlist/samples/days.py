"""Two small days of upstream files for ``hotlist demo`` and the tests.

``write_demo_days(out_dir)`` writes ``out_dir/day1`` and ``out_dir/day2``, each with the
three CLEW SVS tables (``svs.tbl`` ~100, ``sfr.tbl`` ~20, ``slr.tbl`` ~50 lines) and the
NCIC extract ``VEHEXTRT.txt`` (~300 lines). Day 1 holds, besides generated records, one
of every case the loader must handle: legacy codes (``0H``, ``PQ``, ``NF``, ``D0DG``,
``C0``), unknown make/model/style/colour codes (warnings), junk plates (``NONE``,
``UNK``, ``000``), plates written with a dash, a space or in lower case, N records
(immigration violator: never loaded), W records (not loaded by default), NICs on two
lines, and marker plates (``ZZMARK01``...) that day 2 removes so purge tests can search
for them. Day 2 is a later snapshot: some entries removed, some added, some changed (an
NCIC colour or ORI, an SVS date of loss or county), and its ``sfr.tbl`` is a bad file:
its trailer count disagrees with its record lines, so it must be rejected while the
other three files apply.

Every removed, added or changed identity is a well-formed hit of a default hit type
(``V P F R A M``), so the recorded changes are also what the store must show after
day 2; and day 2 removes less than 5 % of any file's entries (the default mass-deletion
guard), so the bad file is the only one rejected. Same seed, same bytes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

from hotlist.samples.formats import (
    ClewRecord,
    NcicLayout,
    NcicRecord,
    write_clew,
    write_ncic,
)
from hotlist.samples.generate import (
    DEFAULT_HIT_TYPES,
    NIC_MULTIPLIER,
    NIC_NUMBERS,
    clew_records,
    clew_universe,
    code_table,
    ncic_records,
    ncic_universe,
    stream_key,
    table_codes,
)

#: CLEW file name -> hotlist list name (docs/formats.md section 1).
SVS_FILES = {"svs.tbl": "stolen_vehicle", "sfr.tbl": "felony_vehicle", "slr.tbl": "stolen_plate"}
NCIC_FILE = "VEHEXTRT.txt"
#: Day 2's deliberately incomplete file: its trailer counts lines that are not there.
BAD_FILE = "sfr.tbl"
DEMO_DAY1 = datetime(2026, 11, 22, 6, 0)
#: Record lines per file on day 1 (generated records plus the special cases).
DEMO_SIZES = {"svs.tbl": 100, "sfr.tbl": 20, "slr.tbl": 50, NCIC_FILE: 300}
#: Plates that are placeholders, not hits (docs/formats.md section 3).
NOT_HIT_PLATES = frozenset({"", "NONE", "UNK", "UNKNOWN", "0", "00", "000", "190"})
#: Marker plates: on day 1 only, in files that day 2 applies (never the bad file).
SVS_MARKERS = {
    "svs.tbl": (("ZZMARK01", "CA"), ("ZZMARK02", "NV")),
    "slr.tbl": (("ZZMARK03", "CA"),),
}
NCIC_MARKERS = (("ZZMARK04", "CA"),), (("ZZMARK05", "CA"), ("ZZMARK06", "AZ"))

Which = Literal["removed", "added", "changed"]
T = TypeVar("T")


def plate_key(raw: str) -> str:
    """Normalized plate: uppercase, only A-Z0-9 (docs/formats.md section 3)."""
    return re.sub(r"[^A-Z0-9]", "", raw.upper())


def state_key(raw: str) -> str:
    """Normalized state: digit 0 read as letter O, legacy province aliases."""
    aliases = {r["legacy"]: r["code"] for r in code_table("aliases") if r["field"] == "state"}
    code = raw.strip().upper().replace("0", "O")
    return aliases.get(code, code)


@dataclass(frozen=True, order=True)
class EntryKey:
    """The identity of an entry: ``(list, plate, state)`` for SVS, ``(NIC, plate, state)``
    for NCIC, with plate and state as written and as normalized."""

    key: str
    plate_raw: str
    state_raw: str

    @property
    def plate(self) -> str:
        return plate_key(self.plate_raw)

    @property
    def state(self) -> str:
        return state_key(self.state_raw)

    @property
    def identity(self) -> tuple[str, str, str]:
        """``(list or NIC, normalized plate, normalized state)``."""
        return (self.key, self.plate, self.state)

    @property
    def raw_identity(self) -> tuple[str, str, str]:
        return (self.key, self.plate_raw, self.state_raw)


@dataclass(frozen=True)
class FeedChanges:
    """How day 2 differs from day 1: entries removed, added, and present on both days
    with other content (same identity)."""

    removed: frozenset[EntryKey]
    added: frozenset[EntryKey]
    changed: frozenset[EntryKey]

    def identities(self, which: Which, *, raw: bool = False) -> frozenset[tuple[str, str, str]]:
        entries: frozenset[EntryKey] = getattr(self, which)
        return frozenset(e.raw_identity if raw else e.identity for e in entries)


@dataclass(frozen=True)
class DemoDays:
    """What ``write_demo_days`` wrote, for the demo and the tests to check against."""

    root: Path
    day1: Path
    day2: Path
    seed: int
    day1_time: datetime
    day2_time: datetime
    ncic_layout: NcicLayout
    #: SVS entries changed by the day-2 files that apply (``svs.tbl``, ``slr.tbl``)
    svs: FeedChanges
    #: NCIC entries changed by day 2
    ncic: FeedChanges
    #: day 2's rejected file, and the changes it would have made had it been applied
    bad_file: Path
    bad_file_changes: FeedChanges
    #: plates on day 1 only (in files that apply on day 2): purge tests search for them
    marker_plates: frozenset[str]
    #: NICs of N records (immigration violator): in the files, never in the store
    immigration_nics: frozenset[str]
    #: placeholder plates written (``NONE``...): in the files, never hits
    not_hit_plates: frozenset[str]
    #: records written, per day (``day1``, ``day2``) and CLEW file name
    clew_records: dict[str, dict[str, tuple[ClewRecord, ...]]]
    #: NCIC lines written, per day
    ncic_records: dict[str, tuple[NcicRecord, ...]]


def _clew_identity(list_name: str, r: ClewRecord) -> EntryKey:
    return EntryKey(list_name, r.plate, r.state)


def _ncic_identity(r: NcicRecord) -> EntryKey:
    return EntryKey(r.nic, r.plate, r.state)


def _diff(
    before: Iterable[tuple[EntryKey, object]], after: Iterable[tuple[EntryKey, object]]
) -> FeedChanges:
    old = {k.identity: (k, v) for k, v in before}
    new = {k.identity: (k, v) for k, v in after}
    return FeedChanges(
        removed=frozenset(old[i][0] for i in old.keys() - new.keys()),
        added=frozenset(new[i][0] for i in new.keys() - old.keys()),
        changed=frozenset(new[i][0] for i in old.keys() & new.keys() if old[i][1] != new[i][1]),
    )


def _is_default_hit(r: NcicRecord) -> bool:
    return r.hit_type in DEFAULT_HIT_TYPES and plate_key(r.plate) not in NOT_HIT_PLATES


# --- SVS --------------------------------------------------------------------------------


def _clew_specials(name: str, rng: random.Random, as_of: datetime) -> list[ClewRecord]:
    """The special cases of one CLEW table on day 1 (markers first)."""

    def entry(plate: str, state: str, county: str = "19") -> ClewRecord:
        return ClewRecord(plate, state, county, (as_of - timedelta(days=rng.randint(3, 60))).date())

    specials = [entry(plate, state) for plate, state in SVS_MARKERS.get(name, ())]
    specials += {
        "svs.tbl": [
            entry("NONE", "CA"),
            entry("4xyz-12", "CA", "37"),
            entry("5KDE882", "0H", "01"),
        ],
        "slr.tbl": [entry("UNK", "CA"), entry("QCX 447", "PQ", "30"), entry("NFL2231", "NF", "33")],
        "sfr.tbl": [entry("000", "CA"), entry("8fel 01", "CA", "36")],
    }[name]
    return specials


def _clew_days(
    name: str, seed: int, day1_time: datetime
) -> tuple[list[ClewRecord], list[ClewRecord]]:
    """Day 1 and day 2 records of one CLEW table."""
    rng = random.Random(f"demo/{seed}/{name}")  # noqa: S311 - sample data, not secrets
    specials = _clew_specials(name, rng, day1_time)
    taken = {(plate_key(r.plate), state_key(r.state)) for r in specials}
    size = DEMO_SIZES[name] - len(specials)
    pool = [
        r
        for r in clew_records(clew_universe(SVS_FILES[name], seed, size + 12, day1_time))
        if (plate_key(r.plate), state_key(r.state)) not in taken
    ]
    generated, spare = (
        pool[:size],
        [r for r in pool[size:] if plate_key(r.plate) not in NOT_HIT_PLATES],
    )
    day1 = _interleave(rng, generated, specials)

    eligible = [r for r in generated if plate_key(r.plate) not in NOT_HIT_PLATES]
    markers = {plate for plate, _ in SVS_MARKERS.get(name, ())}
    # (removed besides markers, added, changed): removals stay under the default
    # mass-deletion guard (5 % of the entries), so only the bad file is rejected
    counts = {"svs.tbl": (2, 4, 3), "slr.tbl": (1, 2, 2), "sfr.tbl": (0, 1, 1)}[name]
    removed_n, added_n, changed_n = counts
    picked = rng.sample(eligible, removed_n + changed_n)
    removed = set(picked[:removed_n]) | {r for r in specials if r.plate in markers}
    changed = {r: _change_clew(rng, r) for r in picked[removed_n:]}
    odd = [r for r in specials if r.plate != r.plate.upper() and name == "svs.tbl"]
    changed.update({r: _change_clew(rng, r) for r in odd})
    day2 = [changed.get(r, r) for r in day1 if r not in removed]
    return day1, _interleave(rng, day2, spare[:added_n])


def _change_clew(rng: random.Random, r: ClewRecord) -> ClewRecord:
    if rng.random() < 0.7:
        return replace(r, loss_date=r.loss_date - timedelta(days=rng.randint(1, 30)))
    counties = [c for c in table_codes("counties") if c != r.county]
    return replace(r, county=rng.choice(counties))


def _interleave(rng: random.Random, records: Sequence[T], extra: Sequence[T]) -> list[T]:
    """``records`` in order, with ``extra`` inserted at random places."""
    out = list(records)
    for r in extra:
        out.insert(rng.randint(0, len(out)), r)
    return out


# --- NCIC -------------------------------------------------------------------------------


def _special_nic(seed: int, letter: str, n: int) -> str:
    """NICs for the special cases: the generator's bijection at rows no universe reaches."""
    offset = stream_key(seed, "ncic/nic-offset") % NIC_NUMBERS
    return f"{letter}{((900_000_000 + n) * NIC_MULTIPLIER + offset) % NIC_NUMBERS:09d}"


def _known(r: NcicRecord) -> bool:
    """Every code of the record is in the current tables (a clean base for a special)."""
    models = {(m["make"], m["code"]) for m in code_table("models")}
    return (
        r.make in table_codes("makes")
        and (not r.model or (r.make, r.model) in models)
        and r.style in table_codes("styles")
        and r.colour in table_codes("colours")
        and r.plate_type in table_codes("plate_types")
    )


def _ncic_specials(seed: int, bases: Sequence[NcicRecord]) -> list[NcicRecord]:
    """One line for every special case, each on its own generated base (markers first)."""
    count = iter(range(1_000))

    def line(letter: str, plate: str, state: str = "CA", nic: str = "", **codes: str) -> NcicRecord:
        """A line on the next base; ``codes`` override make, model, style, colour, ORI
        or plate type."""
        n = next(count)
        base = bases[n % len(bases)]
        return replace(
            base,
            nic=nic or _special_nic(seed, letter, n),
            plate=plate,
            state=state,
            ori=codes.get("ori", base.ori),
            plate_type=codes.get("plate_type", base.plate_type),
            make=codes.get("make", base.make),
            model=codes.get("model", base.model),
            style=codes.get("style", base.style),
            colour=codes.get("colour", base.colour),
        )

    single, pair = NCIC_MARKERS
    specials = [line("V", plate, state) for plate, state in single]
    pair_nic = _special_nic(seed, "V", 999)
    specials += [line("V", plate, state, nic=pair_nic) for plate, state in pair]
    two_line = _special_nic(seed, "P", 998)
    return [
        *specials,
        line("N", "6NRV301"),
        line("N", "ABX4410", "TX"),
        line("N", "7MXL115"),
        line("W", "5WPN772"),
        line("W", "GHT6619", "NV"),
        line("V", "8RVN120", make="RIVN", model="R1T", style="PK"),
        line("V", "8TYB447", make="TOYT", model="BZ4", style="UT"),
        line("F", "7HND903", make="HOND", model="CIV", style="CU"),
        line("V", "6AQU214", colour="AQU"),
        line("V", "JKL5521", "0H", ori="0H0671200"),
        line("V", "7DDG660", make="D0DG", model="CHA", style="4D"),
        line("R", "BXRT448", "PQ", ori="PQ0110000"),
        line("R", "CNF2231", "NF", ori="NF0010000"),
        line("P", "4COM558", plate_type="C0"),
        line("V", "NONE"),
        line("P", "UNK", "NV"),
        line("V", "000"),
        line("V", "8XYZ-421"),
        line("F", "6def 552"),
        line("P", "5TWO118", nic=two_line),
        line("P", "TWO2118", "AZ", nic=two_line),
    ]


def _ncic_days(seed: int, day1_time: datetime) -> tuple[list[NcicRecord], list[NcicRecord]]:
    """Day 1 and day 2 lines of the NCIC extract, sorted by NIC."""
    rng = random.Random(f"demo/{seed}/ncic")  # noqa: S311 - sample data, not secrets
    size = DEMO_SIZES[NCIC_FILE]
    universe = ncic_records(ncic_universe(seed, size + 60, day1_time, supplemental_per_mille=80))
    bases = [r for r in universe if r.hit_type == "V" and _known(r)]
    specials = _ncic_specials(seed, bases)
    generated = universe[: size - len(specials)]
    day1_nics = {r.nic for r in generated}
    spare = [r for r in universe[len(generated) :] if r.nic not in day1_nics]

    def by_nic(records: Iterable[NcicRecord]) -> dict[str, list[NcicRecord]]:
        out: dict[str, list[NcicRecord]] = {}
        for r in records:
            out.setdefault(r.nic, []).append(r)
        return out

    lines_of = by_nic(generated)
    eligible = [nic for nic, lines in lines_of.items() if all(map(_is_default_hit, lines))]
    single = [nic for nic in eligible if len(lines_of[nic]) == 1]
    removed_nics = rng.sample(single, 5)  # with markers: 9 lines, under the 5 % guard
    changed_nics = rng.sample([n for n in eligible if n not in removed_nics], 5)
    kept = [n for n in eligible if n not in removed_nics and n not in changed_nics]
    markers = {plate for group in NCIC_MARKERS for plate, _ in group}
    removed = {r for nic in removed_nics for r in lines_of[nic]}
    removed |= {r for r in specials if r.plate in markers or r.plate == "TWO2118"}
    odd = next(r for r in specials if r.plate == "8XYZ-421")
    changed: dict[NcicRecord, NcicRecord] = {}
    for i, lines in enumerate([*(lines_of[nic] for nic in changed_nics), [odd]]):
        colour, ori = _ncic_change(rng, lines[0], i)
        changed.update({r: replace(r, colour=colour, ori=ori) for r in lines})

    added_groups = [lines for lines in by_nic(spare).values() if all(map(_is_default_hit, lines))]
    added = [r for lines in added_groups[:6] for r in lines]
    host = lines_of[kept[0]][0]  # a supplemental plate appears on an unchanged NIC
    added.append(replace(host, plate="SUP9041", state="OR"))

    day1 = sorted([*generated, *specials], key=lambda r: r.nic)
    day2 = [changed.get(r, r) for r in day1 if r not in removed]
    return day1, sorted([*day2, *added], key=lambda r: r.nic)


def _ncic_change(rng: random.Random, r: NcicRecord, i: int) -> tuple[str, str]:
    """(colour, ORI) after the change. Even ``i``: another colour; odd ``i``: another ORI
    of the same state and county."""
    if i % 2 == 0:
        return rng.choice([c for c in table_codes("colours") if c != r.colour]), r.ori
    return r.colour, r.ori[:5] + ("9900" if r.ori[-4:] != "9900" else "9800")


# --- both days --------------------------------------------------------------------------


def write_demo_days(
    out_dir: Path,
    seed: int = 2026,
    *,
    day1_time: datetime = DEMO_DAY1,
    day2_time: datetime | None = None,
    ncic_layout: NcicLayout = "ncic-fixed",
) -> DemoDays:
    """Write ``out_dir/day1`` and ``out_dir/day2`` (see the module docstring).

    ``day2_time`` defaults to 12 hours after ``day1_time``. CLEW tables end their lines
    with CRLF, the NCIC extract with LF; ``ncic_layout="ncic-csv"`` writes the extract
    as CSV (same file name, same header line).
    """
    day2_time = day2_time or day1_time + timedelta(hours=12)
    if day2_time <= day1_time:
        raise ValueError("day 2 must be a later snapshot than day 1")
    days = {"day1": out_dir / "day1", "day2": out_dir / "day2"}
    times = {"day1": day1_time, "day2": day2_time}
    for path in days.values():
        path.mkdir(parents=True, exist_ok=True)

    clew: dict[str, dict[str, tuple[ClewRecord, ...]]] = {"day1": {}, "day2": {}}
    for name in SVS_FILES:
        one, two = _clew_days(name, seed, day1_time)
        clew["day1"][name], clew["day2"][name] = tuple(one), tuple(two)
        for day, records in (("day1", one), ("day2", two)):
            bad = day == "day2" and name == BAD_FILE
            trailer = len(records) + 3 if bad else None
            write_clew(days[day] / name, records, times[day], newline="\r\n", trailer_count=trailer)

    one_ncic, two_ncic = _ncic_days(seed, day1_time)
    ncic = {"day1": tuple(one_ncic), "day2": tuple(two_ncic)}
    for day, lines in ncic.items():
        write_ncic(days[day] / NCIC_FILE, lines, times[day], layout=ncic_layout)

    def svs_entries(day: str, names: Iterable[str]) -> list[tuple[EntryKey, object]]:
        return [(_clew_identity(SVS_FILES[n], r), r) for n in names for r in clew[day][n]]

    applied = [n for n in SVS_FILES if n != BAD_FILE]
    all_plates = [r.plate for day in clew.values() for rs in day.values() for r in rs]
    all_ncic = [*one_ncic, *two_ncic]
    all_plates += [r.plate for r in all_ncic]
    return DemoDays(
        root=out_dir,
        day1=days["day1"],
        day2=days["day2"],
        seed=seed,
        day1_time=day1_time,
        day2_time=day2_time,
        ncic_layout=ncic_layout,
        svs=_diff(svs_entries("day1", applied), svs_entries("day2", applied)),
        ncic=_diff(
            [(_ncic_identity(r), r) for r in one_ncic], [(_ncic_identity(r), r) for r in two_ncic]
        ),
        bad_file=days["day2"] / BAD_FILE,
        bad_file_changes=_diff(svs_entries("day1", [BAD_FILE]), svs_entries("day2", [BAD_FILE])),
        marker_plates=frozenset(
            plate for group in (*SVS_MARKERS.values(), *NCIC_MARKERS) for plate, _ in group
        ),
        immigration_nics=frozenset(r.nic for r in all_ncic if r.hit_type == "N"),
        not_hit_plates=frozenset(
            plate for plate in all_plates if plate_key(plate) in NOT_HIT_PLATES
        ),
        clew_records=clew,
        ncic_records=ncic,
    )
