"""Keyed hashes: opaque entry ids, and "was this plate removed?" without keeping the plate.

Entry ids are 63 bits of HMAC-SHA256(key, feed|identity), computed by polars-hash (a
stable, specified hash: the same on every library version) while a chunk is parsed:
stable across versions without a lookup of the previous snapshot, and meaningless
without the key. Line keys are 128 bits of an HMAC-SHA256 of the raw line under a key
derived from it: the store recognizes a line it parsed before without keeping the line.
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


#: The two BIGINT columns of a line key, as a content file's entries hold them.
LINE_KEY_COLUMNS = ("line_key_hi", "line_key_lo")


class LineKeyer:
    """128 bits of HMAC-SHA256 of each raw line, as two BIGINT columns.

    The HMAC key is HMAC-SHA256(key, "line-key"): lines and identities never share a key,
    so a line key cannot be read as an entry id. 128 bits: two different lines share a key
    with a probability of about 2^-128 per pair, far below any hardware fault rate.
    """

    def __init__(self, data_dir: Path) -> None:
        self._key = hmac.new(_key(data_dir), b"line-key", hashlib.sha256).hexdigest()

    def __call__(self, lines: pl.DataFrame) -> pl.DataFrame:
        """``(line_no, line_key_hi, line_key_lo)`` of ``lines`` (``line_no, text``)."""
        digest = plh.CryptographicHashingNameSpace(pl.col("text")).hmac_sha256(key=self._key)
        halves = (
            pl.col("_digest")
            .str.slice(start, 16)
            .str.to_integer(base=16, dtype=pl.UInt64)
            .reinterpret(signed=True)
            .alias(name)
            for start, name in zip((0, 16), LINE_KEY_COLUMNS, strict=True)
        )
        return (
            lines.lazy().select("line_no", digest.alias("_digest")).select("line_no", *halves)
        ).collect()


class PlateHasher:
    """HMAC-SHA256 of ``PLATE|STATE`` (both normalized) under the local key."""

    def __init__(self, data_dir: Path) -> None:
        self._key = _key(data_dir)

    def __call__(self, plate: str, state: str) -> str:
        return hmac.new(self._key, f"{plate}|{state}".encode(), hashlib.sha256).hexdigest()
