"""The SFTP leg: ``fetch_sftp`` against OpenSSH's ``sftp`` client, same sshd, same file.

    .venv/bin/python -m bench.sftp_leg [--size-mb 125] [--repeats 3] [--change-detection]

Starts a real OpenSSH server on loopback (``hotlist.testing.sshd``), then downloads one
file alternately with ``fetch_sftp`` (hash + fsync + atomic rename included) and with
``sftp -b -`` (OpenSSH's own client, default options, no fsync; ``sftp -f`` adds fsync and
is measured too). Each figure is the median of ``repeats`` runs; connection setup counts.

``--change-detection`` measures instead what it costs to learn that the file is the one
taken last: with a ``.sha256`` companion (read, not the file), and without one (the file
downloaded and hashed, then dropped), against a whole ``sftp`` download in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hotlist.config import SourceConfig
from hotlist.sources import Taken, Unchanged, never_taken
from hotlist.sources.sftp import fetch_sftp
from hotlist.testing.sshd import LOOPBACK, SshdServer

_LINE_CHARS = 63  # + newline: 64-byte fixed-width-looking records
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "


def write_fixed_width_file(path: Path, size_bytes: int) -> Path:
    """Random upper-case ASCII in 64-byte lines, ``size_bytes`` long (rounded to a line)."""
    table = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))
    lines_per_chunk = (1 << 20) // (_LINE_CHARS + 1)
    lines_left = size_bytes // (_LINE_CHARS + 1)
    with open(path, "wb") as out:
        while lines_left > 0:
            lines = min(lines_per_chunk, lines_left)
            raw = os.urandom(lines * _LINE_CHARS).translate(table)
            out.write(
                b"".join(raw[i : i + _LINE_CHARS] + b"\n" for i in range(0, len(raw), _LINE_CHARS))
            )
            lines_left -= lines
    return path


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _fetch_ours(server: SshdServer, file: Path, landing: Path) -> None:
    fetch_sftp(_source(server, file), ["bench"], landing, never_taken)


def _source(server: SshdServer, file: Path) -> SourceConfig:
    return SourceConfig(
        url=server.url_for(file.parent),
        layout="bench",
        files={"bench": file.name},
        private_key=server.client_key,
        known_hosts=server.known_hosts,
    )


def _fetch_openssh(server: SshdServer, file: Path, target: Path, *, fsync: bool) -> None:
    command = [
        "sftp",
        *(["-f"] if fsync else []),
        "-b",
        "-",
        "-i",
        str(server.client_key),
        "-o",
        f"UserKnownHostsFile={server.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-P",
        str(server.port),
        f"{server.user}@{LOOPBACK}",
    ]
    subprocess.run(
        command, input=f'get "{file}" "{target}"\n'.encode(), check=True, capture_output=True
    )


def measure_sftp(file: Path, workdir: Path, repeats: int = 3) -> dict[str, float]:
    """MB/s of ``fetch_sftp`` and of OpenSSH ``sftp`` for ``file``; ratio = our time / theirs."""
    file = file.resolve()
    megabytes = file.stat().st_size / 1e6
    landing = workdir / "landing"
    target = workdir / "openssh" / file.name
    landing.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {"ours": [], "openssh": [], "openssh_fsync": []}
    with SshdServer(parent=workdir) as server:
        runs: dict[str, Callable[[], object]] = {
            "ours": lambda: _fetch_ours(server, file, landing),
            "openssh": lambda: _fetch_openssh(server, file, target, fsync=False),
            "openssh_fsync": lambda: _fetch_openssh(server, file, target, fsync=True),
        }
        for _ in range(repeats):
            for name, run in runs.items():
                times[name].append(_timed(run))
                (landing / file.name).unlink(missing_ok=True)
                target.unlink(missing_ok=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "size_mb": megabytes,
        "ours_mb_s": megabytes / median["ours"],
        "openssh_mb_s": megabytes / median["openssh"],
        "openssh_fsync_mb_s": megabytes / median["openssh_fsync"],
        "ratio": median["ours"] / median["openssh"],
        "ratio_vs_openssh_fsync": median["ours"] / median["openssh_fsync"],
    }


def measure_change_detection(file: Path, workdir: Path, repeats: int = 3) -> dict[str, float]:
    """Seconds to find ``file`` unchanged, with and without its companion; ratio to ``sftp``."""
    file = file.resolve()
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    companion = file.with_name(file.name + ".sha256")
    landing = workdir / "landing"
    target = workdir / "openssh" / file.name
    landing.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    last = Taken(file.name, digest)

    def unchanged(with_companion: bool) -> None:
        if with_companion:
            companion.write_text(f"{digest}  {file.name}\n")
        else:
            companion.unlink(missing_ok=True)
        found = fetch_sftp(_source(server, file), ["bench"], landing, lambda _feed: last)
        assert found == [Unchanged("bench", file.name)], found

    times: dict[str, list[float]] = {"companion": [], "download_and_hash": [], "openssh": []}
    with SshdServer(parent=workdir) as server:
        runs: dict[str, Callable[[], object]] = {
            "companion": lambda: unchanged(True),
            "download_and_hash": lambda: unchanged(False),
            "openssh": lambda: _fetch_openssh(server, file, target, fsync=False),
        }
        for _ in range(repeats):
            for name, run in runs.items():
                times[name].append(_timed(run))
                target.unlink(missing_ok=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "size_mb": file.stat().st_size / 1e6,
        "companion_s": median["companion"],
        "download_and_hash_s": median["download_and_hash"],
        "openssh_download_s": median["openssh"],
        "companion_vs_openssh": median["companion"] / median["openssh"],
        "download_and_hash_vs_openssh": median["download_and_hash"] / median["openssh"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=125.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--change-detection", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hotlist-sftp-bench-") as tmp:
        workdir = Path(tmp)
        file = write_fixed_width_file(workdir / "VEHEXTRT.txt", int(args.size_mb * 1e6))
        measure = measure_change_detection if args.change_detection else measure_sftp
        figures = measure(file, workdir, args.repeats)
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
