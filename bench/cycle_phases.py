"""Where hotlist's day-2 cycle spends its time and memory: wall time and peak RSS per phase.

    .venv/bin/python -m bench.cycle_phases [--lines 2000000] [--variant unknown-models]
        [--profile bench/out/cycle-day2.pstats]

Day 1 goes in by a ``hotlist ingest ncic`` process of its own (not measured here); then
this process runs day 2 exactly as that command does (``hotlist.cli`` called in-process,
no Prefect API), with the functions of each phase wrapped by timers. The code is not
changed: the wrappers replace module attributes in this process only.

Each phase reports its wall time (inclusive, and its own time outside the phases under
it) and its peak RSS: the kernel's high-water mark (``VmHWM``) is reset through
``/proc/self/clear_refs`` when a phase starts and read when it ends, so each phase's
peak is its own, and the peak of a phase includes the peaks of the phases under it.
Parsing runs on worker threads: its time is summed over the threads (thread-seconds),
beside the tree. The verification's files are timed one by one, grouped by kind.

``--profile`` also writes a cProfile of the day-2 run (``python -m pstats FILE``).
The imports the cycle needs are made, and timed, before day 2 starts.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cycle_days import cycle_days
from bench.cycle_leg import HOTLIST, OUT, clean_env, hotlist_store, stage


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


@dataclass
class Phase:
    label: str
    calls: int = 0
    seconds: float = 0.0
    child_seconds: float = 0.0
    peak_kb: int = 0
    rss_in_kb: int = 0
    rss_out_kb: int = 0
    children: dict[str, Phase] = field(default_factory=dict)
    bytes: int = 0


class Phases:
    """A tree of timed phases, built as wrapped functions call one another (main thread)."""

    def __init__(self) -> None:
        self.root = Phase("day-2 cycle")
        self.stack: list[tuple[Phase, float]] = []
        self.threads: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def _fold_peak(self) -> None:
        peak = _status("VmHWM:")
        for phase, _ in self.stack:
            phase.peak_kb = max(phase.peak_kb, peak)
        self.root.peak_kb = max(self.root.peak_kb, peak)
        _reset_peak()

    def enter(self, label: str) -> None:
        self._fold_peak()
        parent = self.stack[-1][0] if self.stack else self.root
        phase = parent.children.setdefault(label, Phase(label))
        phase.calls += 1
        if not phase.rss_in_kb:
            phase.rss_in_kb = _status("VmRSS:")
        self.stack.append((phase, time.perf_counter()))

    def leave(self) -> None:
        self._fold_peak()
        phase, started = self.stack.pop()
        elapsed = time.perf_counter() - started
        phase.seconds += elapsed
        phase.rss_out_kb = _status("VmRSS:")
        if self.stack:
            self.stack[-1][0].child_seconds += elapsed
        else:
            self.root.child_seconds += elapsed

    def wrap(self, module: str, name: str, label: str | Callable[..., str]) -> None:
        owner: Any = importlib.import_module(module)
        for part in name.split(".")[:-1]:
            owner = getattr(owner, part)
        attr = name.split(".")[-1]
        original = getattr(owner, attr)
        phases = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            text = label(*args, **kwargs) if callable(label) else label
            if threading.current_thread() is not threading.main_thread():
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    with phases.lock:
                        phases.threads.setdefault(text, []).append(time.perf_counter() - started)
            phases.enter(text)
            try:
                return original(*args, **kwargs)
            finally:
                phases.leave()

        setattr(owner, attr, timed)


def _file_kind(path: Path, root: Path, data_dir: Path, *_: Any) -> str:
    where = "data_dir" if root == data_dir else "PREFECT_HOME" if "prefect" in str(root) else "root"
    rel = re.sub(r"\d+", "N", str(path.relative_to(root)))
    return f"verify file: {where}/{rel}"


#: (module, attribute, label): the phases, as the functions that make them.
WRAPPED: list[tuple[str, str, str | Callable[..., str]]] = [
    ("hotlist.ingest", "ingest_source", "1 ingest"),
    ("hotlist.ingest", "acquire", "1.1 fetch/land (copy + sha256)"),
    ("hotlist.ingest", "apply_landed", "1.2 parse, validate, apply"),
    ("hotlist.ingest", "read_snapshot", "read lines + header"),
    ("hotlist.ingest", "apply_snapshot", "apply snapshot"),
    ("hotlist.ingest", "recover", "recover (control db)"),
    ("hotlist.ingest", "write_state", "state.json"),
    ("hotlist.store.apply", "write_content_file", "write next content file"),
    ("hotlist.store.apply", "_commit_version", "commit version (control db)"),
    ("hotlist.store.apply", "write_state", "state.json"),
    ("hotlist.store.write", "connect_writer", "open writer"),
    ("hotlist.store.write", "write_entries", "stream entries"),
    ("hotlist.store.write", "drop_duplicates", "drop duplicate identities"),
    ("hotlist.store.diff", "against_previous", "diff against previous"),
    ("hotlist.store.write", "checkpoint_scrubbing_wal", "checkpoint, scrub WAL"),
    ("hotlist.store.write", "seal", "seal (fsync, rename)"),
    ("hotlist.store.stream", "lines_to_parse", "line keys, find unchanged lines"),
    ("hotlist.store.stream", "copy_unchanged", "copy unchanged entries + warnings"),
    ("hotlist.store.stream", "release", "release"),
    ("hotlist.store.chunks", "validated_chunk", "parse + validate a chunk"),
    ("hotlist.store.unchanged", "line_keys", "line keys of every line"),
    ("hotlist.cli.ingest", "purge_after_ingest", "2 publish + purge"),
    ("hotlist.purge", "scrub_unreferenced", "scrub unreferenced"),
    ("hotlist.purge", "recover", "recover (control db)"),
    ("hotlist.purge", "gone_ids", "gone ids"),
    ("hotlist.purge", "collect_markers", "collect markers (superseded file)"),
    ("hotlist.purge", "still_listed", "markers still listed (current file)"),
    ("hotlist.publish", "publish", "2.1 publish (Parquet, CSV)"),
    ("hotlist.publish", "write_version_files", "write Parquet + CSV (one read, hashed)"),
    ("hotlist.publish", "_fsync_tree", "fsync"),
    ("hotlist.publish", "_scrub_dir", "scrub a leftover"),
    ("hotlist.purge", "erase_transients", "2.2 erase transients"),
    ("hotlist.purge", "scrub_tree", "2.3 scrub superseded published version"),
    ("hotlist.purge", "needs_rewrite", "2.4 needs rewrite?"),
    ("hotlist.purge", "rewrite_fresh", "2.4 rewrite content file"),
    ("hotlist.audit", "recover_torn_tail", "access-log torn tail"),
    ("hotlist.purge", "verify", "2.5 verification scan"),
    ("hotlist.verify", "count_gone_entries", "entry ids in content files"),
    ("hotlist.verify", "_check_file", _file_kind),
    ("hotlist.verify", "_check_raw", "raw files, searched together"),
    ("hotlist.purge", "unsearchable", "unsearchable markers"),
    ("hotlist.purge", "scrub_unlink", "2.6 scrub superseded content file"),
    ("hotlist.reports", "write_run_report", "2.7 deletion report"),
    ("hotlist.purge", "write_state", "state.json"),
]

#: What the day-2 cycle imports, loaded (and timed) before it starts.
IMPORTS = (
    "hotlist.cli", "hotlist.cli.ingest", "hotlist.ingest", "hotlist.purge", "hotlist.publish",
    "hotlist.verify", "hotlist.reports", "hotlist.store.apply", "hotlist.store.write",
    "hotlist.store.stream", "hotlist.store.chunks", "hotlist.parse", "hotlist.audit",
)  # fmt: skip


def show(phase: Phase, depth: int = 0, out: list[str] | None = None) -> list[str]:
    out = [] if out is None else out
    own = phase.seconds - phase.child_seconds
    out.append(
        f"{'  ' * depth}{phase.label[:70]:{72 - 2 * depth}} {phase.calls:4} {phase.seconds:8.2f}"
        f" {own:8.2f} {phase.peak_kb / 1024:8.0f} {phase.rss_in_kb / 1024:7.0f}"
        f" {phase.rss_out_kb / 1024:7.0f}"
    )
    for child in sorted(phase.children.values(), key=lambda p: -p.seconds):
        show(child, depth + 1, out)
    return out


def as_dict(phase: Phase) -> dict[str, Any]:
    return {
        "label": phase.label, "calls": phase.calls, "seconds": round(phase.seconds, 3),
        "own_seconds": round(phase.seconds - phase.child_seconds, 3),
        "peak_rss_mb": round(phase.peak_kb / 1024), "rss_in_mb": round(phase.rss_in_kb / 1024),
        "rss_out_mb": round(phase.rss_out_kb / 1024),
        "children": [as_dict(c) for c in phase.children.values()],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--variant", default="unknown-models")
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    days = cycle_days(OUT, args.lines, args.variant)
    root = OUT / "cycle-work" / f"phases-{args.variant}"
    config = hotlist_store(root)
    env = clean_env(root / "prefect-home")
    stage(days.day1, root / "drop")
    subprocess.run([str(HOTLIST), "ingest", "ncic", "-c", str(config)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    stage(days.day2, root / "drop")
    os.environ.clear()
    os.environ.update(env)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    for name in IMPORTS:
        importlib.import_module(name)
    imports_s = time.perf_counter() - started
    rss_after_imports = _status("VmRSS:") / 1024
    phases = Phases()
    for module, name, label in WRAPPED:
        phases.wrap(module, name, label)
    from hotlist.cli import app

    profile = cProfile.Profile() if args.profile else None
    _reset_peak()
    started = time.perf_counter()
    if profile:
        profile.enable()
    app(["ingest", "ncic", "-c", str(config)], prog_name="hotlist", standalone_mode=False)
    if profile:
        profile.disable()
        profile.dump_stats(args.profile)
    phases.root.seconds = time.perf_counter() - started
    phases._fold_peak()
    lines = [
        f"day-2 cycle, {args.variant}, {days.lines_day2:,} lines; load average"
        f" {load:.1f} -> {os.getloadavg()[0]:.1f}; imports before it {imports_s:.2f} s"
        f" (RSS after them {rss_after_imports:.0f} MB)",
        f"{'phase':72} {'calls':>4} {'wall s':>8} {'own s':>8} {'peak MB':>8} {'RSS in':>7}"
        f" {'RSS out':>7}",
        *show(phases.root),
        "thread-seconds on worker threads (in parallel, inside 'stream entries'):",
        *(f"  {k}: {sum(v):.2f} s over {len(v)} calls" for k, v in phases.threads.items()),
    ]
    print("\n".join(lines))
    result = {
        "variant": args.variant, "lines": days.lines_day2, "imports_s": round(imports_s, 3),
        "rss_after_imports_mb": round(rss_after_imports), "load_before": load,
        "load_after": os.getloadavg()[0], "tree": as_dict(phases.root),
        "threads": {k: round(sum(v), 3) for k, v in phases.threads.items()},
    }  # fmt: skip
    (OUT / f"cycle-phases-{args.variant}.json").write_text(json.dumps(result, indent=2))
    (OUT / f"cycle-phases-{args.variant}.txt").write_text("\n".join(lines) + "\n")
    files = sorted(p for p in (root / "data").rglob("*") if p.is_file())
    print("files under data_dir after the cycle:")
    for p in files:
        print(f"  {p.stat().st_size / 1e6:9.1f} MB  {p.relative_to(root / 'data')}")
    shutil.rmtree(root / "data", ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
