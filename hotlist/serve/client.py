"""The reference client: keep a local copy of the hotlist in sync, with deltas and acks.

What a patrol integration runs (``hotlist pull``). The copy is ``OUT/hotlist.parquet``
with ``OUT/state.json`` naming its version; each pull asks for the delta since that
version (or gets a full version when too far behind), applies removals and upserts,
replaces the copy atomically, then acknowledges the version so the deletion reports
can count this copy as purged.

The copy holds record content wherever it is kept, so its files are mode 0600 even in a
directory the operator made world-readable; a directory the client creates is 0700.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl

from hotlist.private import make_private, replacing, write_private


class PullError(Exception):
    """The server refused or failed; the message carries its problem detail."""


@dataclass(frozen=True)
class PullResult:
    version: int
    full: bool
    entries: int
    upserts: int
    removals: int


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{response.status_code} {body.get('title')}: {body.get('detail')}"
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"


def pull(
    server: str, key: str, user: str, purpose: str, out: Path, timeout_s: float = 120.0
) -> PullResult:
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_file, copy = out / "state.json", out / "hotlist.parquet"
    for existing in (copy, state_file):  # a copy left 0644 by an older client
        make_private(existing)
    state = json.loads(state_file.read_text()) if state_file.exists() and copy.exists() else {}
    since = state.get("version")
    headers = {"Authorization": f"Bearer {key}", "X-User": user, "X-Purpose": purpose}
    params: dict[str, str | int] = {"format": "parquet"}
    if since is not None:
        params["since"] = since
    with httpx.Client(base_url=server, timeout=timeout_s) as http:
        response = http.get("/v1/hotlist", params=params, headers=headers)
        if response.status_code != 200:
            raise PullError(_problem(response))
        version = int(response.headers["X-Hotlist-Version"])
        full = response.headers["X-Hotlist-Full"] == "true"
        incoming = pl.read_parquet(io.BytesIO(response.content))
        if full:
            merged = incoming
            upserts, removals = incoming.height, 0
        else:
            local = pl.read_parquet(copy)
            gone = incoming.filter(pl.col("op") == "remove")["entry_id"]
            fresh = incoming.filter(pl.col("op") == "upsert").drop("op")
            touched = pl.concat([gone, fresh["entry_id"]]).implode()
            merged = pl.concat(
                [local.filter(~pl.col("entry_id").is_in(touched)), fresh.select(local.columns)]
            )
            upserts, removals = fresh.height, gone.len()
        with replacing(copy) as fh:
            merged.sort("plate", "state").write_parquet(fh)
        write_private(state_file, json.dumps({"version": version}))
        acked = http.post("/v1/ack", json={"version": version}, headers=headers)
        if acked.status_code != 200:
            raise PullError(_problem(acked))
    return PullResult(version, full, merged.height, upserts, removals)
