"""For auditors: search the block device (or image) under ``data_dir`` for removed content.

``[purge] raw_device = PATH`` makes every purge read that device whole and search it for
the content of the records it is about to mark purged (their plates and NICs, in every
encoding :mod:`hotlist.scan` knows), free blocks and journal included. The superseded
content files are still the purge's source of those markers at that moment (they are
scrubbed right after it marks), so the blocks they occupy are left out of the search:
their physical extents come from the filesystem (``FS_IOC_FIEMAP``), which is why the
device must be the one that holds ``data_dir``. A file whose extents cannot be mapped
(another filesystem, no FIEMAP) leaves nothing excluded: its content is then a finding.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from hotlist.scan import ByteSearch, Schema, blocks, raw_patterns, sqlite_schema

_FS_IOC_FIEMAP = 0xC020660B
_FIEMAP_FLAG_SYNC = 0x1
_HEADER = struct.Struct("=QQLLLL")
_EXTENT = struct.Struct("=QQQQQLLLL")
_EXTENTS_PER_CALL = 256
_LAST = 0x1


@dataclass(frozen=True)
class RawHit:
    offset: int


def physical_extents(path: Path) -> list[tuple[int, int]]:
    """The physical byte ranges ``[start, end)`` a file occupies on its device."""
    ranges: list[tuple[int, int]] = []
    start = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            request = bytearray(_HEADER.size + _EXTENT.size * _EXTENTS_PER_CALL)
            _HEADER.pack_into(
                request, 0, start, (1 << 64) - 1 - start, _FIEMAP_FLAG_SYNC, 0,
                _EXTENTS_PER_CALL, 0,
            )  # fmt: skip
            fcntl.ioctl(fd, _FS_IOC_FIEMAP, request)
            mapped = _HEADER.unpack_from(request, 0)[3]
            if mapped == 0:
                return ranges
            for i in range(mapped):
                logical, physical, length, _, _, flags, *_ = _EXTENT.unpack_from(
                    request, _HEADER.size + i * _EXTENT.size
                )
                ranges.append((physical, physical + length))
                start = logical + length
                if flags & _LAST:
                    return ranges
    finally:
        os.close(fd)


def excluded_ranges(paths: list[Path]) -> list[tuple[int, int]]:
    """The physical ranges of ``paths`` (files that cannot be mapped exclude nothing)."""
    ranges: list[tuple[int, int]] = []
    for path in paths:
        try:
            ranges += physical_extents(path)
        except OSError:
            continue
    return sorted(ranges)


def scan_device(
    device: Path, markers: list[str], exclude: list[tuple[int, int]], schema: Schema = ()
) -> list[RawHit]:
    """Offsets on ``device`` where a marker occurs outside the ``exclude`` ranges, where it
    can be a plate (:func:`hotlist.chance.edges`: the digits of a NIC or a UUID elsewhere
    on the device are no hit, as in a file), and outside the whole text of a statement
    of ``schema`` (the schemas of the SQLite databases under ``data_dir``: their words
    are no copy of a record, on the device as in the file, :func:`hotlist.scan.sqlite_schema`)."""
    patterns = raw_patterns(markers)
    search = ByteSearch(patterns)
    if not patterns:
        return []
    hits: list[RawHit] = []
    with open(device, "rb", buffering=0) as fh:
        for origin, data, lo, hi in blocks(fh, search.overlap):
            if search.hits([data], [(lo, hi)], [schema])[0]:
                hits += [
                    RawHit(origin + at)
                    for at in search.standing(data, lo, hi, schema)
                    if not _inside(origin + at, exclude)
                ]
    return sorted(set(hits), key=lambda h: h.offset)


def schemas_under(root: Path) -> Schema:
    """The schema statements of every SQLite database under ``root``."""
    found: set[bytes] = set()
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            found.update(sqlite_schema(path))
    return tuple(sorted(found))


def _inside(offset: int, ranges: list[tuple[int, int]]) -> bool:
    return any(start <= offset < end for start, end in ranges)
