"""The access log in PostgreSQL (``[serve] database_url``): one chain for every replica.

The records, the head and the anchors are tables (``pg/migrations/0002_access_log.sql``);
the HMAC key is not: it stays in ``data_dir/secrets/audit-hmac.key`` on every host that
writes, so whoever can write the tables still cannot recompute the chain after an edit.
The database keeps only the key's *identity* (an HMAC of a fixed label with the key): a
writer started with another key is refused rather than forking the chain.

Appends are serialized by the database, not by a lock held across round trips: a writer
keeps the head it last saw, chains its records onto it, and sends one statement that
moves the head only if it is still that one (compare-and-set) and inserts the records in
the same statement. Another writer got there first: nothing was inserted, the statement
returned the head as it now is, and the records are chained onto that and sent again.
One round trip per request while a writer is alone, two when replicas take turns; the
head row is locked for a statement only, and the primary key on ``seq`` backs it up.

Durability, as with the file log: a server's appends commit with ``synchronous_commit =
off`` (a crash of the server loses nothing, a crash of PostgreSQL at most about three
``wal_writer_delay``); :meth:`PgAccessLogWriter.sync` commits, synchronously, a
transaction that writes WAL (a transactional ``pg_logical_emit_message``) on a connection
of its own: PostgreSQL flushes WAL in order, so every append committed before it is on
disk when it returns. A batch of reads is answered only after that; the command line's
appends commit synchronously.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from hotlist import pg
from hotlist.audit.anchors import ANCHOR_EVERY, Anchor, to_control
from hotlist.audit.keys import key_path, load_key, mac, same
from hotlist.audit.segments import Head
from hotlist.config import ConfigError
from hotlist.pg.migrate import require_current
from hotlist.timefmt import iso

if TYPE_CHECKING:  # chain imports this module
    from hotlist.audit.pg_journal import Journal
    from hotlist.audit.record import AccessRecord

#: The ``segment`` of every anchor of the PostgreSQL log (the file log's name its files).
SEGMENT = "access_log"
#: What the key's identity is an HMAC of.
IDENTITY_LABEL = b"hotlist SB 34 access log key identity, v1"
#: The record's fields in hashing order of the table (``hash`` last).
FIELDS = (
    "seq", "time", "user", "organization", "purpose", "data_element", "outcome", "channel",
    "client", "prev", "hash",
)  # fmt: skip
COLUMNS = (
    'seq, time, "user", organization, purpose, data_element, outcome, channel, client, prev, hash'
)
#: Move the head if it is still the one the records were chained onto, and insert them,
#: in one statement; else leave it, and return it as it now is (the latest version: the
#: UPDATE waits for a concurrent one and re-reads the row), so that a writer that lost
#: the race chains again with no extra round trip. The head row is locked only for the
#: statement. One record (a request) binds plain parameters, faster than arrays (~0.15
#: ms less); a batch binds one array per column.
_MOVE_HEAD = """
WITH h AS (
    UPDATE access_log_head SET
        seq = CASE WHEN seq = %(old_seq)s AND hash = %(old_hash)s THEN %(seq)s ELSE seq END,
        hash = CASE WHEN seq = %(old_seq)s AND hash = %(old_hash)s THEN %(hash)s ELSE hash END,
        token = CASE WHEN seq = %(old_seq)s AND hash = %(old_hash)s THEN %(token)s ELSE token END
    RETURNING seq, hash, token
), i AS (
    INSERT INTO access_log (seq, time, "user", organization, purpose, data_element, outcome,
                            channel, client, prev, hash)
"""
_APPEND_ONE = (
    _MOVE_HEAD  # noqa: S608 (constant text)
    + """    SELECT %(c0)s::bigint, %(c1)s, %(c2)s, %(c3)s, %(c4)s, %(c5)s, %(c6)s, %(c7)s,
           %(c8)s, %(c9)s, %(c10)s FROM h WHERE h.token = %(token)s
) SELECT seq, hash, token FROM h
"""
)
_APPEND_MANY = (
    _MOVE_HEAD  # noqa: S608 (constant text)
    + """    SELECT r.* FROM h, unnest(%(c0)s::bigint[], %(c1)s::text[], %(c2)s::text[],
        %(c3)s::text[], %(c4)s::text[], %(c5)s::text[], %(c6)s::text[], %(c7)s::text[],
        %(c8)s::text[], %(c9)s::text[], %(c10)s::text[]) AS r WHERE h.token = %(token)s
) SELECT seq, hash, token FROM h
"""
)
SELECT_RECORDS = f"SELECT {COLUMNS} FROM access_log"  # noqa: S608 (constant text)
_NO_HEAD = (
    "the access log's head row (table access_log_head) is missing: run `hotlist audit"
    " verify`; nothing can be appended until it is restored"
)
#: A transaction that writes WAL (so its synchronous commit flushes all WAL before it).
_FLUSH = "SELECT pg_logical_emit_message(true, 'hotlist.access_log', '')"


#: After a failed reconnection, the writer tries again only this much later.
RECONNECT_PAUSE_S = 1.0


def key_identity(key: bytes) -> str:
    return hmac.new(key, IDENTITY_LABEL, hashlib.sha256).hexdigest()


def open_log(url: str, synchronous: bool = True) -> psycopg.Connection[Any]:
    """A connection to the log's database, its schema checked; ``synchronous=False``:
    its commits do not wait for the WAL flush (the API's appends)."""
    con = pg.connect(url, options=f"-c synchronous_commit={'on' if synchronous else 'off'}")
    try:
        require_current(con)
    except BaseException:
        con.close()
        raise
    return con


def read_head(con: psycopg.Connection[Any]) -> Head:
    row = con.execute("SELECT seq, hash FROM access_log_head").fetchone()
    if row is None:
        raise RuntimeError(_NO_HEAD)
    return Head(SEGMENT, int(row[0]), str(row[1]))


def holds_anything(con: psycopg.Connection[Any]) -> bool:
    row = con.execute(
        "SELECT EXISTS (SELECT FROM access_log) OR EXISTS (SELECT FROM access_log_anchors)"
        " OR EXISTS (SELECT FROM access_log_key)"
    ).fetchone()
    return bool(row and row[0])


def checked_key(con: psycopg.Connection[Any], url: str, data_dir: Path) -> bytes:
    """This host's audit key, the one the database's chain is made with.

    Created only when the database holds nothing made with a key; its identity is
    recorded at first use. Another key than the recorded one is refused
    (:class:`ConfigError`): copy the key file from a host that writes the log."""
    path = key_path(data_dir)
    try:
        key = load_key(data_dir, create=False)
    except FileNotFoundError:
        if holds_anything(con):
            raise ConfigError(
                f"the access log's key {path} is missing, but the access log in PostgreSQL"
                f" at {pg.where(url)} was made with one: copy secrets/audit-hmac.key from a"
                " host that writes this log (mode 0600); a new key would fork the chain"
            ) from None
        key = load_key(data_dir)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:  # a copy made for this host without -p (cp, scp) under a 022 umask
        raise ConfigError(
            f"the audit key {path} can be read by other users (mode {mode:o}); whoever"
            f" reads it can rewrite the access log undetected: chmod 600 {path}"
        )
    identity = key_identity(key)
    row = con.execute("SELECT identity FROM access_log_key").fetchone()
    if row is None:
        # One statement, so that a host starting at the same moment, which records its
        # key's identity and then appends, is seen by one test or the other.
        con.execute(
            "INSERT INTO access_log_key (one, identity, recorded_at)"
            " SELECT true, %s, %s WHERE NOT EXISTS (SELECT FROM access_log)"
            " ON CONFLICT (one) DO NOTHING",
            (identity, iso(dt.datetime.now(dt.UTC))),
        )
        row = con.execute("SELECT identity FROM access_log_key").fetchone()
        if row is None:
            raise ConfigError(
                f"the access log in PostgreSQL at {pg.where(url)} holds records but no key"
                " identity (table access_log_key was emptied): run `hotlist audit verify`"
                " before anything is appended"
            )
    if row is None or not same(str(row[0]), identity):
        raise ConfigError(
            f"the audit key {path} is not the key the access log in PostgreSQL at"
            f" {pg.where(url)} is chained with: copy secrets/audit-hmac.key from the host"
            " that first wrote the log (every replica and the command line need the same key)"
        )
    return key


def record_anchor(
    con: psycopg.Connection[Any], key: bytes, seq: int, hash_: str, kind: str, place: str,
    at: dt.datetime | None = None,
) -> Anchor:  # fmt: skip
    anchor = made_anchor(key, seq, hash_, kind, place, at)
    con.execute(INSERT_ANCHOR, anchor_row(anchor))
    return anchor


INSERT_ANCHOR = (
    "INSERT INTO access_log_anchors (at, segment, seq, hmac, kind, place, mac)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def made_anchor(
    key: bytes, seq: int, hash_: str, kind: str, place: str, at: dt.datetime | None = None
) -> Anchor:
    body = Anchor(iso(at or dt.datetime.now(dt.UTC)), SEGMENT, seq, hash_, kind, place)
    return Anchor(**{**body.body(), "mac": mac(key, body.body())})


def anchor_row(anchor: Anchor) -> tuple[str, str, int, str, str, str, str]:
    return (anchor.at, anchor.segment, anchor.seq, anchor.hmac, anchor.kind, anchor.place,
            anchor.mac)  # fmt: skip


def stored_anchors(con: psycopg.Connection[Any]) -> list[Anchor]:
    rows = con.execute(
        "SELECT at, segment, seq, hmac, kind, place, mac FROM access_log_anchors ORDER BY id"
    ).fetchall()
    return [Anchor(str(a), str(s), int(q), str(h), str(k), str(p), str(m))
            for a, s, q, h, k, p, m in rows]  # fmt: skip


def last_anchored(con: psycopg.Connection[Any]) -> dt.datetime | None:
    row = con.execute("SELECT max(at) FROM access_log_anchors WHERE kind = 'anchor'").fetchone()
    return dt.datetime.fromisoformat(row[0]) if row and row[0] else None


class PgAccessLogWriter:
    """The PostgreSQL counterpart of :class:`hotlist.audit.chain.AccessLogWriter`
    (``append``, ``append_many``, ``sync``, ``close``); a server keeps one open.

    ``synchronous``: every append commits durably (the command line); otherwise appends
    are durable at :meth:`sync` (the server: its syncer, and the gate after a batch).
    A server's requests append through :class:`hotlist.audit.pg_loop.LoopAppends`, on
    its event loop, with this writer's head, key, anchors and :meth:`sync`."""

    def __init__(
        self, url: str, data_dir: Path, synchronous: bool = False,
        anchor_every: dt.timedelta = ANCHOR_EVERY,
    ) -> None:  # fmt: skip
        self.url = url
        self.data_dir = data_dir
        self.synchronous = synchronous
        self._con = open_log(url, synchronous)
        try:
            self._key = checked_key(self._con, url, data_dir)
            self._head = read_head(self._con)
            self._last_anchor = last_anchored(self._con)
        except BaseException:
            self._con.close()
            raise
        self._anchor_every = anchor_every
        #: Opened now, not at the first batch: connecting costs that batch ~10 ms.
        self._sync_con: psycopg.Connection[Any] | None = None
        if not synchronous:
            try:
                self._sync_con = _sync_connection(url)
            except BaseException:
                self._con.close()
                raise
        self._dirty = False
        self._mutex = threading.Lock()
        self._sync_mutex = threading.Lock()
        #: Appends that found another writer's records first (re-chained): contention.
        self.retries = 0
        self._no_reconnect_until = 0.0
        #: A server's journal (:mod:`hotlist.audit.pg_journal`), set by its appends.
        self.journal: Journal | None = None

    def append(self, record: AccessRecord, at: dt.datetime | None = None) -> dict[str, Any]:
        return self.append_many([record], at)[0]

    def append_many(
        self, records: Iterable[AccessRecord], at: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """Chain ``records`` onto the head and write them in one statement."""
        when = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        stamp = when.isoformat(timespec="microseconds")
        return self.append_fields([{"time": stamp, **storable(r.fields())} for r in records], when)

    def append_fields(
        self,
        batch: list[dict[str, Any]],
        when: dt.datetime | None = None,
        on_chained: Callable[[list[dict[str, Any]]], None] | None = None,
        in_doubt: Sequence[tuple[int, str]] = (),
    ) -> list[dict[str, Any]]:
        """Chain records (their storable fields, ``time`` included) onto the head and
        write them in one statement (``when``: for the hourly anchor, now unless given);
        ``on_chained`` sees each chaining before it is sent (a journal notes what is in
        flight). A statement whose answer was lost may still land later (a backend
        waiting on a lock does not notice its client gone): whenever the head moved
        under a statement, each such one is asked about, and ``in_doubt`` adds earlier
        ones of the same records (a dead server's: the last record's seq and hash). The
        records as written are returned (for one of ``in_doubt``: its last record's seq
        and hash only)."""
        if not batch:
            return []
        when = when or dt.datetime.now(dt.UTC)
        unsure = [[{"seq": seq, "hash": hash_}] for seq, hash_ in in_doubt]
        with self._mutex:
            reconnected = False
            while True:
                entries = self.chain(self._head, batch)
                if on_chained is not None:
                    on_chained(entries)
                token = secrets.randbits(63)
                try:
                    now = self._write(self._head, entries, token)
                except psycopg.OperationalError:
                    # The connection broke: was the statement committed before it did?
                    if reconnected:
                        raise
                    reconnected = True
                    unsure.append(entries)
                    self._reconnect()
                    now = self._current()
                if now[2] == token:
                    break
                landed = next((u for u in unsure if self._landed(u[-1])), None)
                if landed is not None:  # written; another writer may have gone on since
                    entries = landed
                    break
                self.retries += 1  # another writer moved the head first: chain onto its
                self._head = Head(SEGMENT, now[0], now[1])
            if entries[-1]["seq"] > self._head.seq:
                self._head = Head(SEGMENT, entries[-1]["seq"], entries[-1]["hash"])
            self._dirty = not self.synchronous
            if self._last_anchor is None or when - self._last_anchor >= self._anchor_every:
                record_anchor(
                    self._con, self._key, self._head.seq, self._head.hash, "anchor", "hourly",
                    when,
                )  # fmt: skip
                self._last_anchor = when
        return entries

    def holds(self, seq: int, hash_: str) -> bool:
        """Whether the record ``seq`` with hash ``hash_`` is in the log (a statement whose
        fate a crash hid)."""
        with self._mutex:
            return self._landed({"seq": seq, "hash": hash_})

    def head(self) -> Head:
        """The head this writer last saw (appends chain onto it, then compare-and-set)."""
        with self._mutex:
            return self._head

    def appended(self, head: Head, when: dt.datetime) -> bool:
        """Records up to ``head`` were appended at ``when`` by another path of this
        writer (:mod:`hotlist.audit.pg_loop`): the head moves on, :meth:`sync` has work,
        and True if an hourly anchor is due (the caller records it; it counts as done)."""
        with self._mutex:
            if head.seq > self._head.seq:
                self._head = head
            self._dirty = not self.synchronous
            due = self._last_anchor is None or when - self._last_anchor >= self._anchor_every
            if due:
                self._last_anchor = when
            return due

    def hourly_anchor(self, head: Head, when: dt.datetime) -> Anchor:
        """The hourly anchor of ``head`` at ``when``, made with this writer's key."""
        return made_anchor(self._key, head.seq, head.hash, "anchor", "hourly", when)

    def chain(self, head: Head, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``batch`` (storable fields, ``time`` included) as records chained onto ``head``."""
        entries = []
        seq, prev = head.seq, head.hash
        for fields in batch:
            seq += 1
            body = {"seq": seq, **fields, "prev": prev}
            prev = mac(self._key, body)
            entries.append({**body, "hash": prev})
        return entries

    def _write(self, old: Head, entries: list[dict[str, Any]], token: int) -> tuple[int, str, int]:
        """The compare-and-set and the insert, one statement: the head after it (its
        token is ``token`` if the records were written)."""
        return moved(self._con.execute(*append_statement(old, entries, token)).fetchone())

    def _current(self) -> tuple[int, str, int]:
        return moved(self._con.execute(CURRENT_HEAD).fetchone())

    def _landed(self, last: dict[str, Any]) -> bool:
        """Whether a statement whose answer was lost did write ``last``: the head's token
        tells only until another writer moves the head, the record itself stays. (A
        record another writer chained identically, same fields at the same microsecond
        onto the same head, would be taken for it.)"""
        return is_record(self._con.execute(RECORD_HASH, (last["seq"],)).fetchone(), last)

    def _reconnect(self) -> None:
        """A new connection; after a failed attempt, none for ``RECONNECT_PAUSE_S``: a
        server's requests then fail at once instead of each waiting for a connect
        timeout while the database is away."""
        with contextlib.suppress(psycopg.Error):
            self._con.close()
        if time.monotonic() < self._no_reconnect_until:
            raise pg.DatabaseUnavailable(
                f"the access log's database (PostgreSQL at {pg.where(self.url)}) was"
                " unreachable less than a second ago"
            )
        try:
            self._con = open_log(self.url, self.synchronous)
        except BaseException:
            self._no_reconnect_until = time.monotonic() + RECONNECT_PAUSE_S
            raise

    def sync(self) -> None:
        """Make every append made so far durable: the server's journal fsynced (the
        records not yet sent), then a synchronous commit that writes WAL, on a
        connection of its own (appends go on meanwhile)."""
        if self.journal is not None:
            self.journal.sync()
        with self._mutex:
            if not self._dirty:
                return
            self._dirty = False  # an append during the flush below sets it again
        with self._sync_mutex:
            try:
                try:
                    self._flush()
                except psycopg.OperationalError:  # a broken connection: once more, anew
                    self._flush(fresh=True)
            except Exception:  # not durable yet: the next sync tries again
                with self._mutex:
                    self._dirty = True
                raise

    def _flush(self, fresh: bool = False) -> None:
        if fresh and self._sync_con is not None:
            with contextlib.suppress(psycopg.Error):
                self._sync_con.close()
        if fresh or self._sync_con is None or self._sync_con.closed:
            self._sync_con = _sync_connection(self.url)
        self._sync_con.execute(_FLUSH)

    def close(self) -> None:
        try:
            self.sync()
        finally:
            with self._mutex:
                self._con.close()
            with self._sync_mutex:
                if self._sync_con is not None:
                    self._sync_con.close()
                    self._sync_con = None


def append_statement(
    old: Head, entries: list[dict[str, Any]], token: int
) -> tuple[str, dict[str, Any]]:
    """The compare-and-set of the head from ``old`` and the insert of ``entries``
    (chained onto ``old``), one statement, and its parameters."""
    last = entries[-1]
    params: dict[str, Any] = {
        "old_seq": old.seq, "old_hash": old.hash, "seq": last["seq"], "hash": last["hash"],
        "token": token,
    }  # fmt: skip
    if len(entries) == 1:
        return _APPEND_ONE, params | {f"c{i}": last[f] for i, f in enumerate(FIELDS)}
    return _APPEND_MANY, params | {f"c{i}": [e[f] for e in entries] for i, f in enumerate(FIELDS)}


#: The head as it is (after a statement whose answer was lost).
CURRENT_HEAD = "SELECT seq, hash, token FROM access_log_head"
#: A record's hash by its ``seq``.
RECORD_HASH = "SELECT hash FROM access_log WHERE seq = %s"


def moved(row: tuple[Any, ...] | None) -> tuple[int, str, int]:
    """The head (seq, hash, token) an append or :data:`CURRENT_HEAD` returned."""
    if row is None:
        raise RuntimeError(_NO_HEAD)
    return int(row[0]), str(row[1]), int(row[2])


def is_record(row: tuple[Any, ...] | None, last: dict[str, Any]) -> bool:
    """Whether :data:`RECORD_HASH` found ``last`` itself."""
    return row is not None and str(row[0]) == last["hash"]


#: PostgreSQL's text cannot hold NUL (psycopg refuses the statement): a request whose
#: path or plate carries one would go unlogged, and unanswered. It is logged with this
#: character in its place, and hashed so.
NUL_STAND_IN = "\ufffd"


def storable(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.replace("\x00", NUL_STAND_IN) if isinstance(v, str) and "\x00" in v else v
        for k, v in fields.items()
    }


def _sync_connection(url: str) -> psycopg.Connection[Any]:
    """A connection whose commits wait for the WAL flush, whatever the role's default."""
    return pg.connect(url, options="-c synchronous_commit=on")


def records(url: str, since: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every record, oldest first, streamed (a server-side cursor)."""
    with open_log(url) as con, con.transaction():
        cur = con.cursor(name="access_log_records")
        cur.itersize = 5000
        if since is None:
            cur.execute(SELECT_RECORDS + " ORDER BY seq")
        else:
            start = since.astimezone(dt.UTC).isoformat(timespec="microseconds")
            cur.execute(SELECT_RECORDS + " WHERE time >= %s ORDER BY seq", (start,))
        for row in cur:
            entry = dict(zip(FIELDS, row, strict=True))
            if since is None or dt.datetime.fromisoformat(entry["time"]) >= since:
                yield entry


def holds_records(url: str) -> bool:
    with open_log(url) as con:
        return read_head(con).seq > 0


def anchor(url: str, data_dir: Path, where: str, control: Any = None) -> Anchor:
    """Record the chain's head now (synchronously: the anchor is on disk, and with it
    every record it names)."""
    with open_log(url) as con:
        key = checked_key(con, url, data_dir)
        head = read_head(con)
        written = record_anchor(con, key, head.seq, head.hash, "anchor", where)
    if control is not None:
        to_control(control, written)
    return written


def expire(url: str, data_dir: Path, keep_from: dt.datetime) -> list[str]:
    """Delete the records older than ``keep_from`` (never the newest record, never one
    after a younger one), anchoring the last deleted one first (kind ``expired``) in the
    same transaction: ``audit verify`` then starts the chain after it."""
    cut = keep_from.astimezone(dt.UTC).isoformat(timespec="microseconds")
    with open_log(url) as con:
        key = checked_key(con, url, data_dir)
        with con.transaction():
            head = read_head(con)
            row = con.execute("SELECT min(seq) FROM access_log WHERE time >= %s", (cut,)).fetchone()
            last = (int(row[0]) - 1) if row and row[0] is not None else head.seq - 1
            found = con.execute("SELECT hash FROM access_log WHERE seq = %s", (last,)).fetchone()
            first = con.execute("SELECT min(seq) FROM access_log").fetchone()
            if found is None or not first or first[0] is None:
                return []
            record_anchor(con, key, last, str(found[0]), "expired", "retention")
            con.execute("DELETE FROM access_log WHERE seq <= %s", (last,))
    return [f"{SEGMENT} records {first[0]} to {last}"]
