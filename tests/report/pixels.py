"""The pixels of a screenshot: a small PNG decoder (8-bit RGB/RGBA, not interlaced, the five
PNG row filters), for checking which colours a page drew. The file's structure is checked by
``tests.measure.browser.read_png`` first; this only unfilters and counts."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from pathlib import Path

Rgb = tuple[int, int, int]


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _paeth(line: bytearray, prior: bytes, bpp: int) -> None:
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
        line[i] = (line[i] + pred) & 0xFF


def _unfilter(kind: int, line: bytearray, prior: bytes, bpp: int) -> None:
    """Undo one row's filter in place (``prior``: the previous row, unfiltered)."""
    if kind == 1:
        for i in range(bpp, len(line)):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        line[:] = bytes((x + y) & 0xFF for x, y in zip(line, prior, strict=True))
    elif kind == 3:
        for i in range(len(line)):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:
        _paeth(line, prior, bpp)
    elif kind != 0:
        raise AssertionError(f"unknown PNG filter {kind}")


def colour_counts(path: Path) -> Counter[Rgb]:
    """How many pixels of each RGB colour the PNG at ``path`` has (alpha ignored)."""
    chunks = _chunks(path.read_bytes())
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and colour in (2, 6) and interlace == 0, "expected 8-bit RGB(A), not interlaced"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * bpp
    prior = bytes(stride)
    counts: Counter[Rgb] = Counter()
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, prior, bpp)
        counts.update(zip(line[0::bpp], line[1::bpp], line[2::bpp], strict=True))
        prior = bytes(line)
    return counts


def rgb(hex_colour: str) -> Rgb:
    """``"#0969da"`` as ``(9, 105, 218)``."""
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
