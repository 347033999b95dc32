"""Run one command and report its wall time, peak RSS and CPU time, as JSON on stdout.

    python -m bench.rss_exec OUTPUT_FILE -- COMMAND [ARGS...]

The peak RSS is the kernel's high-water mark of the command (``ru_maxrss`` of the waited
child). On Linux that mark is carried across ``exec``: a child forked from a large
process starts at that process's size. This launcher imports nothing but the standard
library, so the command's peak is its own (this process is ~10 MB). The command's stdout
and stderr go to OUTPUT_FILE.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def main() -> None:
    output, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        raise SystemExit("usage: python -m bench.rss_exec OUTPUT_FILE -- COMMAND [ARGS...]")
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with open(output, "wb") as out:
        status = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "status": status,
                "wall_s": round(wall, 3),
                "rss_mb": round(usage.ru_maxrss / 1024, 1),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "load_before": round(load, 2),
                "load_after": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
