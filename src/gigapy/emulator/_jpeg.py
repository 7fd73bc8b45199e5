"""A tiny baseline JPEG encoder: flat 8x8 blocks (DC coefficients only), enough for real, viewable images.

Generated pictures are deterministic mosaics derived from the prompt.
"""

from __future__ import annotations

import math
import random
import struct

Color = tuple[int, int, int]

# Standard luminance DC Huffman table (ITU T.81, Annex K.3): code lengths and symbols 0..11.
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
# AC table with a single symbol: end-of-block (0x00), code "0". Every block is flat.
_AC_BITS = (1,) + (0,) * 15
_AC_VALUES = (0,)
_QUANT = 8  # DC quantizer: a flat block's DC is 8 * (value - 128), so the quantized DC is value - 128.


def _huffman_codes(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Symbol → (code, length) for a canonical Huffman table."""
    codes: dict[int, tuple[int, int]] = {}
    code, index = 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[index]] = (code, length)
            code += 1
            index += 1
        code <<= 1
    return codes


_DC_CODES = _huffman_codes(_DC_BITS, _DC_VALUES)
_EOB = _huffman_codes(_AC_BITS, _AC_VALUES)[0]


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def _headers(width: int, height: int) -> bytes:
    jfif = _segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    dqt = _segment(0xFFDB, b"\x00" + bytes([_QUANT] + [1] * 63))
    sof = _segment(0xFFC0, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00")
    tables = b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALUES) + b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALUES)
    dht = _segment(0xFFC4, tables)
    sos = _segment(0xFFDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
    return b"\xff\xd8" + jfif + dqt + sof + dht + sos


def _ycbcr(color: Color) -> tuple[int, int, int]:
    r, g, b = color
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return tuple(max(-128, min(127, round(v - 128))) for v in (y, cb, cr))  # type: ignore[return-value]


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.nbits = 0

    def put(self, code: int, length: int) -> None:
        self.acc = (self.acc << length) | code
        self.nbits += length
        while self.nbits >= 8:
            self.nbits -= 8
            byte = (self.acc >> self.nbits) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)
        self.acc &= (1 << self.nbits) - 1

    def finish(self) -> bytes:
        if self.nbits:
            self.put((1 << (8 - self.nbits)) - 1, 8 - self.nbits)
        return bytes(self.out)


def encode(blocks: list[list[Color]]) -> bytes:
    """A baseline JPEG whose 8x8 blocks have the given colors (rows of equal length)."""
    height, width = len(blocks) * 8, len(blocks[0]) * 8
    writer = _BitWriter()
    previous = [0, 0, 0]
    for row in blocks:
        for color in row:
            for comp, dc in enumerate(_ycbcr(color)):
                diff = dc - previous[comp]
                previous[comp] = dc
                size = abs(diff).bit_length()
                writer.put(*_DC_CODES[size])
                if size:
                    writer.put(diff if diff > 0 else diff + (1 << size) - 1, size)
                writer.put(*_EOB)
    return _headers(width, height) + writer.finish() + b"\xff\xd9"


def mosaic(seed: int, blocks_per_side: int = 64) -> bytes:
    """A deterministic picture for a seed: a gradient sky, a sun and rolling hills."""
    rng = random.Random(seed)
    top, bottom, sun, hill = (tuple(rng.randint(20, 235) for _ in range(3)) for _ in range(4))
    n = blocks_per_side
    cx, cy, radius = rng.uniform(0.2, 0.8) * n, rng.uniform(0.15, 0.45) * n, rng.uniform(0.08, 0.18) * n
    phase, wave = rng.uniform(0, math.tau), rng.uniform(1.5, 4.0)
    rows: list[list[Color]] = []
    for y in range(n):
        t = y / (n - 1)
        sky: Color = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))  # type: ignore[assignment]
        row: list[Color] = []
        for x in range(n):
            ground = n * (0.7 + 0.08 * math.sin(phase + wave * x / n * math.tau))
            if y > ground:
                row.append(hill)  # type: ignore[arg-type]
            elif (x - cx) ** 2 + (y - cy) ** 2 < radius**2:
                row.append(sun)  # type: ignore[arg-type]
            else:
                row.append(sky)
        rows.append(row)
    return encode(rows)
