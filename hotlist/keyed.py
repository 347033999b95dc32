"""Keyed hashes: opaque entry ids, and "was this plate removed?" without keeping the plate.

Entry ids are the low 63 bits of MD5(key | feed | identity), computed in DuckDB: stable
across versions without a lookup of the previous snapshot, and meaningless without the
key. Tombstones carry HMAC-SHA256(key, plate|state). The key is a local secret (``data_dir/secrets/keyed-hash.key``, 32 random bytes, mode
0600) created on first use and never leaving this machine; without it the hashes in
tombstones and deletion reports cannot be tested against guessed plates.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

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


def entry_id_sql(data_dir: Path, feed: str, identity: list[str]) -> str:
    """A DuckDB expression giving the entry id of a row from its identity columns."""
    key = _key(data_dir).hex()  # hex digits only: safe inside the SQL literal
    columns = ", ".join(f'"{c}"' for c in identity)
    return (
        f"CAST(md5_number_lower('{key}|{feed}|' || concat_ws('|', {columns}))"
        " & 9223372036854775807 AS BIGINT)"
    )


class PlateHasher:
    """HMAC-SHA256 of ``PLATE|STATE`` (both normalized) under the local key."""

    def __init__(self, data_dir: Path) -> None:
        self._key = _key(data_dir)

    def __call__(self, plate: str, state: str) -> str:
        return hmac.new(self._key, f"{plate}|{state}".encode(), hashlib.sha256).hexdigest()
