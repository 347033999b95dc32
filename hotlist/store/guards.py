"""The guards: whether a snapshot may become its feed's next version, from counts alone.

A pure function (:func:`refusals`) over what the file holds, what it would remove, and
what the feed's own history looks like. Three signals, because a file cut at a line
boundary in a format without a trailer looks whole:

- the share of rows with errors (``max_row_error_share``);
- the share of current entries the file removes, against ``max_removal_share`` and, once
  the feed has a history, against the largest share its recent versions removed;
- the file's record lines against the previous version's: a shrink larger than the feed's
  recent shrinks.

The history limit is ``max(HISTORY_FLOOR, HISTORY_FACTOR * largest recent share)``, never
above ``max_removal_share``. A feed that removes about 0.3 % a day therefore stops a file
that removes 3 % (a cut, or a real mass removal) until an operator approves that exact
file (``--approve-mass-removal SHA256``); versions applied by such an approval are left out
of the history, so one approved removal does not widen the limit for the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotlist.config import FeedGuards

#: The feed's last this many ingest versions make its history.
HISTORY_VERSIONS = 30
#: The history limits apply once the feed has this many versions with a previous one.
MIN_HISTORY = 3
#: How far above its largest recent share a feed may go without approval.
HISTORY_FACTOR = 2.0
#: The history limit is never below this share: ordinary churn of a quiet feed passes.
HISTORY_FLOOR = 0.01

#: The rule of an applied file event whose removal was approved: left out of the history.
APPROVED_RULE = "mass-removal-approved"


@dataclass(frozen=True)
class Counts:
    """What a snapshot would do to its feed, in counts."""

    record_lines: int  # record lines in the file
    excluded: int  # lines left out by rule (hit types not loaded, manual purges)
    row_errors: int
    removed: int  # current entries the file would remove
    previous_entries: int  # entries of the current version (0: the feed's first version)


@dataclass(frozen=True)
class History:
    """The feed's recent versions: the share of entries each removed, the share by which
    each file's record lines shrank against the file before it, and the current version's
    record lines (None when unknown)."""

    removal_shares: tuple[float, ...] = ()
    shrink_shares: tuple[float, ...] = ()
    previous_record_lines: int | None = None


@dataclass(frozen=True)
class Refusal:
    """A guard that stops the file: a stable rule code, and what was found, in counts."""

    rule: str
    message: str
    approvable: bool  # --approve-mass-removal lifts it


def percents(share: float, limit: float) -> tuple[str, str]:
    """``share`` and ``limit`` as percentages with as many decimals as it takes to tell
    them apart (up to four): 1 in 99 against 1 % reads ``1.01%`` and ``1.00%``."""
    shown = (f"{share:.1%}", f"{limit:.1%}")
    for digits in range(1, 5):
        shown = (f"{share:.{digits}%}", f"{limit:.{digits}%}")
        if shown[0] != shown[1]:
            break
    return shown


def history_limit(shares: tuple[float, ...], ceiling: float) -> float | None:
    """The limit a feed's history sets on a share, or None while the history is short."""
    if len(shares) < MIN_HISTORY:
        return None
    return min(ceiling, max(HISTORY_FLOOR, HISTORY_FACTOR * max(shares)))


def refusals(
    name: str, sha256: str, counts: Counts, history: History, guards: FeedGuards
) -> list[Refusal]:
    """Every guard the snapshot ``name`` (content hash ``sha256``) fails, most basic
    first; empty when it may apply."""
    approve = (
        " If upstream really removed them, approve this exact file:"
        f" --approve-mass-removal {sha256}"
    )
    found: list[Refusal] = []
    candidates = max(counts.record_lines - counts.excluded, 1)
    share = counts.row_errors / candidates
    if share > guards.max_row_error_share:
        got, allowed = percents(share, guards.max_row_error_share)
        found.append(
            Refusal(
                "row-error-share",
                f"{name}: {counts.row_errors} of {candidates} rows have errors ({got} > {allowed}"
                " allowed); the previous snapshot stays; see `hotlist status` and the file's"
                " issues",
                approvable=False,
            )
        )
    removed, previous = counts.removed, counts.previous_entries
    removal = removed / previous if previous else 0.0
    limit = history_limit(history.removal_shares, guards.max_removal_share)
    if removal > guards.max_removal_share:
        got, allowed = percents(removal, guards.max_removal_share)
        found.append(
            Refusal(
                "mass-removal",
                f"{name}: would remove {removed} of {previous} entries ({got} > {allowed}"
                f" allowed).{approve}",
                approvable=True,
            )
        )
    elif limit is not None and removal > limit:
        got, allowed = percents(removal, limit)
        largest = percents(max(history.removal_shares), limit)[0]
        found.append(
            Refusal(
                "removal-above-history",
                f"{name}: would remove {removed} of {previous} entries ({got} > {allowed}"
                f" allowed for this feed: the most its last {len(history.removal_shares)}"
                f" versions removed was {largest}). A file cut short looks like this.{approve}",
                approvable=True,
            )
        )
    before = history.previous_record_lines
    shrink_limit = history_limit(history.shrink_shares, guards.max_removal_share)
    if before and shrink_limit is not None:
        shrink = (before - counts.record_lines) / before
        if shrink > shrink_limit:
            got, allowed = percents(shrink, shrink_limit)
            largest = percents(max(history.shrink_shares), shrink_limit)[0]
            found.append(
                Refusal(
                    "shrink-above-history",
                    f"{name}: holds {counts.record_lines} record lines, {got} fewer than the"
                    f" previous version's {before} ({allowed} allowed for this feed: the"
                    f" most its last {len(history.shrink_shares)} files shrank was"
                    f" {largest}). A file cut short looks like this.{approve}",
                    approvable=True,
                )
            )
    return found
