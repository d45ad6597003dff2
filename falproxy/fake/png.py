"""A tiny PNG writer, so fake image URLs serve a real, decodable picture without Pillow.

Fake outputs promise ``width`` x ``height`` images that browsers render; a solid colour
truecolour PNG built from ``zlib`` and ``struct`` is the smallest honest way to keep it.
"""

from __future__ import annotations

import functools
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 4096  # larger images cost seconds of zlib time for no testing value
_ROWS_PER_BATCH = 64  # feed zlib in batches so big images never sit in memory uncompressed

Rgb = tuple[int, int, int]


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC over type + data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _pixels(width: int, height: int, rgb: Rgb) -> bytes:
    """Compressed scanlines, each prefixed by filter type 0 (none)."""
    row = b"\x00" + bytes(rgb) * width
    compressor = zlib.compressobj(9)
    parts: list[bytes] = []
    for start in range(0, height, _ROWS_PER_BATCH):
        rows = min(_ROWS_PER_BATCH, height - start)
        parts.append(compressor.compress(row * rows))
    parts.append(compressor.flush())
    return b"".join(parts)


@functools.lru_cache(maxsize=64)
def solid_png(width: int, height: int, rgb: Rgb = (128, 128, 128)) -> bytes:
    """Return a valid 8-bit RGB PNG of one colour; cached because outputs reuse a few sizes."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"PNG sides must be within 1..{MAX_SIDE}")
    if any(not 0 <= c <= 255 for c in rgb):
        raise ValueError("colour components must be within 0..255")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", _pixels(width, height, rgb)),
            _chunk(b"IEND", b""),
        )
    )
