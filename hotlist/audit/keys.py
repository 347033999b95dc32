"""The access log's HMAC key and the digest every record, seal and anchor carries.

The key is 32 random bytes in ``data_dir/secrets/audit-hmac.key`` (mode 0600, directory
0700), created on first use: outside the log's directory, so someone who can write the
log cannot recompute the chain after editing it. Keep a copy of it offline: without it,
``hotlist audit verify`` can no longer tell an intact log from a rewritten one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from hotlist.store import private_dir

KEY_BYTES = 32
#: The ``prev`` of the very first record.
GENESIS = "0" * 64


def key_path(data_dir: Path) -> Path:
    return data_dir / "secrets" / "audit-hmac.key"


def load_key(data_dir: Path, create: bool = True) -> bytes:
    """The key; created (atomically, once, even with two processes racing) if missing."""
    path = key_path(data_dir)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
        private_dir(path.parent)
        tmp = path.with_name(f".audit-hmac.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(KEY_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path}: the audit key must be {KEY_BYTES} bytes, found {len(key)}")
    return key


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def mac(key: bytes, body: dict[str, Any]) -> str:
    """HMAC-SHA256 of the canonical JSON of ``body`` (hex)."""
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def legacy_digest(body: dict[str, Any]) -> str:
    """The unkeyed SHA-256 of logs written before the chain was keyed (``access.jsonl``)."""
    return hashlib.sha256(canonical(body)).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
