"""Keyed hashes of plates: answer "was this plate removed?" without keeping the plate.

The key is a local secret (``data_dir/secrets/keyed-hash.key``, 32 random bytes, mode
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


class PlateHasher:
    """HMAC-SHA256 of ``PLATE|STATE`` (both normalized) under the local key."""

    def __init__(self, data_dir: Path) -> None:
        self._key = _key(data_dir)

    def __call__(self, plate: str, state: str) -> str:
        return hmac.new(self._key, f"{plate}|{state}".encode(), hashlib.sha256).hexdigest()
