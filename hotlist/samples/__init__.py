"""Deterministic sample data: CLEW SVS tables and NCIC extracts at the reference layouts.

Used by ``hotlist demo``, the tests and the benchmark. Same seed, same bytes.

* ``write_clew`` / ``write_ncic``: byte-exact writers (docs/formats.md sections 1 and 2);
* ``generate_clew`` / ``generate_ncic``: seeded realistic records;
* ``write_demo_days``: two small days with every special case and one bad file;
* ``write_bench_dataset``: two production-size days, written column-wise.
"""

from hotlist.samples.bench import BenchDataset, write_bench_dataset
from hotlist.samples.days import (
    BAD_FILE,
    NCIC_FILE,
    SVS_FILES,
    DemoDays,
    EntryKey,
    FeedChanges,
    write_demo_days,
)
from hotlist.samples.formats import (
    ClewRecord,
    NcicRecord,
    clew_header,
    clew_trailer,
    ncic_header,
    write_clew,
    write_ncic,
)
from hotlist.samples.generate import generate_clew, generate_ncic

__all__ = [
    "BAD_FILE",
    "NCIC_FILE",
    "SVS_FILES",
    "BenchDataset",
    "ClewRecord",
    "DemoDays",
    "EntryKey",
    "FeedChanges",
    "NcicRecord",
    "clew_header",
    "clew_trailer",
    "generate_clew",
    "generate_ncic",
    "ncic_header",
    "write_bench_dataset",
    "write_clew",
    "write_demo_days",
    "write_ncic",
]
