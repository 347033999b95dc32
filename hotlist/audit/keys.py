"""The access log's HMAC key and the digest every record, seal and anchor carries.

The key is 32 random bytes in ``data_dir/secrets/audit-hmac.key`` (mode 0600, directory
0700), created on first use: outside the log's directory, so someone who can write the
log cannot recompute the chain after editing it. Keep a copy of it offline: without it,
``hotlist audit verify`` can no longer tell an intact log from a rewritten one.

Only the first use creates it. Once a record or an anchor was made with a key, a missing
key is an error, never a reason to make another: a new key would chain every later
record with a key no anchor knows, and deleting the key would pass as a fresh start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from hotlist.config import ConfigError
from hotlist.store import private_dir

KEY_BYTES = 32
#: The ``prev`` of the very first record.
GENESIS = "0" * 64


def key_path(data_dir: Path) -> Path:
    return data_dir / "secrets" / "audit-hmac.key"


def _made_with_a_key(data_dir: Path) -> list[Path]:
    """What already carries an HMAC of the key: a non-empty monthly segment or its
    evidence file (``audit/access-*``; the legacy ``access.jsonl`` is unkeyed), or the
    anchors' database (``audit-anchors/``)."""
    made = [p for p in sorted((data_dir / "audit").glob("access-*")) if p.stat().st_size]
    anchors = data_dir / "audit-anchors" / "anchors.sqlite"
    return [*made, anchors] if anchors.exists() else made


def load_key(data_dir: Path, create: bool = True) -> bytes:
    """The key; created (atomically, once, even with two processes racing) if missing
    and nothing was made with a key yet (else :class:`ConfigError`)."""
    path = key_path(data_dir)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
        made = _made_with_a_key(data_dir)
        if made and not path.exists():  # (exists now: another process's first use won)
            names = ", ".join(p.name for p in made[:3])
            raise ConfigError(
                f"the access log's key {path} is missing, but {names} were made with it:"
                " restore it from its offline copy (a new key would leave every earlier"
                " record unverifiable, and nothing can be logged until then)"
            ) from None
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
        raise ConfigError(f"{path}: the audit key must be {KEY_BYTES} bytes, found {len(key)}")
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
