"""Keyed hashes: opaque entry ids, and "was this plate removed?" without keeping the plate.

Entry ids are 63 bits of HMAC-SHA256(key, feed|identity), computed by polars-hash (a
stable, specified hash: the same on every library version) while a chunk is parsed:
stable across versions without a lookup of the previous snapshot, and meaningless
without the key. Line keys are the XXH3-128 of the raw line, seeded from the key: the
store recognizes a line it parsed before without keeping the line twice.
Tombstones carry HMAC-SHA256(key, plate|state). The key is a local
secret (``data_dir/secrets/keyed-hash.key``, 32 random bytes, mode 0600) created on first
use and never leaving this machine; without it neither the ids nor the hashes in
tombstones and deletion reports can be tested against guessed plates.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import polars as pl
import polars_hash as plh

from hotlist.columns import LINE_KEY_COLUMNS
from hotlist.store import private_dir


def _key(data_dir: Path) -> bytes:
    path = private_dir(data_dir / "secrets") / "keyed-hash.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
        return path.read_bytes()


def local_key(data_dir: Path) -> bytes:
    """The store's local key (created on first use, 0600): keys every hash that stands for
    content the store must not keep."""
    return _key(data_dir)


def entry_id(data_dir: Path, feed: str, identity: list[str]) -> pl.Expr:
    """An expression giving the entry id of a row from its identity columns.

    The message is ``feed|col|col...`` (null columns left out); the HMAC key is the
    local key's hex text. 63 of the digest's bits make a positive BIGINT.
    """
    message = pl.concat_str([pl.lit(feed), *identity], separator="|", ignore_nulls=True)
    digest = plh.CryptographicHashingNameSpace(message).hmac_sha256(key=_key(data_dir).hex())
    return (
        (digest.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64) & (2**63 - 1))
        .cast(pl.Int64)
        .alias("entry_id")
    )


class LineKeyer:
    """The XXH3-128 of each raw line, seeded from the local key, as two BIGINT columns.

    A line key tells the store that it has parsed a line before (the entry and warnings of
    an unchanged line are copied, not parsed again). It lives only in a content file,
    beside the entry parsed from the line, so it needs no secrecy of its own; it needs to
    be unique and cheap: XXH3-128 is a specified hash (the same on every library version,
    checked in the tests against the reference implementation), far cheaper than
    HMAC-SHA256, and two different lines share a key with a probability of about
    2^-128 per pair (rsync trusts it to tell files apart for the same reason). The seed,
    the first 64 bits of HMAC-SHA256(key, "line-key"), keeps even that key local.
    """

    def __init__(self, data_dir: Path) -> None:
        derived = hmac.new(_key(data_dir), b"line-key", hashlib.sha256).digest()
        self._seed = int.from_bytes(derived[:8], "big")

    def __call__(self, lines: pl.DataFrame) -> pl.DataFrame:
        """``(line_no, line_key_hi, line_key_lo)`` of ``lines`` (``line_no, text``)."""
        digest = plh.NonCryptographicHashingNameSpace(pl.col("text")).xxh3_128(
            seed=self._seed, return_binary=True, byte_order="big"
        )
        halves = (
            pl.col("_digest").bin.slice(start, 8).bin.reinterpret(dtype=pl.Int64, endianness="big")
            .alias(name)
            for start, name in zip((0, 8), LINE_KEY_COLUMNS, strict=True)
        )  # fmt: skip
        return (
            lines.lazy().select("line_no", digest.alias("_digest")).select("line_no", *halves)
        ).collect()


class PlateHasher:
    """HMAC-SHA256 of ``PLATE|STATE`` (both normalized) under the local key."""

    def __init__(self, data_dir: Path) -> None:
        self._key = _key(data_dir)

    def __call__(self, plate: str, state: str) -> str:
        return hmac.new(self._key, f"{plate}|{state}".encode(), hashlib.sha256).hexdigest()
