"""Pages as people see them: headless Chromium renders an HTML file to a PNG (or a PDF, as
printed), and a small PNG reader (standard library only) gives the pixels to look at."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def _chromium(tmp: Path, *args: str) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: pages cannot be checked")
        pytest.skip(f"{CHROMIUM} is not installed")
    profile = tmp / "chromium-profile"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--hide-scrollbars", *args],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    shutil.rmtree(profile, ignore_errors=True)


def screenshot(html_file: Path, width: int = 1100, height: int = 1400) -> Image:
    out = html_file.with_suffix(".png")
    _chromium(
        html_file.parent, f"--screenshot={out}", f"--window-size={width},{height}",
        html_file.as_uri(),
    )  # fmt: skip
    return read_png(out)


def print_to_pdf(html_file: Path) -> bytes:
    out = html_file.with_suffix(".pdf")
    _chromium(
        html_file.parent, f"--print-to-pdf={out}", "--no-pdf-header-footer", html_file.as_uri()
    )
    return out.read_bytes()


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    rows: list[bytes]  # RGB, 3 bytes per pixel

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        r, g, b = self.rows[y][3 * x : 3 * x + 3]
        return r, g, b

    def matching(self, color: tuple[int, int, int], tolerance: int = 24) -> list[tuple[int, int]]:
        """Every (x, y) whose colour is within ``tolerance`` of ``color`` on each channel."""
        found = []
        for y, row in enumerate(self.rows):
            for x in range(self.width):
                r, g, b = row[3 * x : 3 * x + 3]
                if (
                    abs(r - color[0]) <= tolerance
                    and abs(g - color[1]) <= tolerance
                    and abs(b - color[2]) <= tolerance
                ):
                    found.append((x, y))
        return found

    def non_white_share(self) -> float:
        ink = sum(
            1 for row in self.rows for i in range(0, len(row), 3) if sum(row[i : i + 3]) < 720
        )
        return ink / (self.width * self.height)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(path: Path) -> Image:
    """8-bit RGB or RGBA, non-interlaced (what Chromium writes), as RGB rows."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, "unsupported PNG"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filt = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if filt == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif filt == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif filt == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif filt == 4:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                up_left = prev[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, prev[i], up_left)) & 0xFF
        prev = line
        if channels == 4:
            rgb = bytearray(width * 3)
            rgb[0::3], rgb[1::3], rgb[2::3] = line[0::4], line[1::4], line[2::4]
            rows.append(bytes(rgb))
        else:
            rows.append(bytes(line))
    return Image(width, height, rows)
