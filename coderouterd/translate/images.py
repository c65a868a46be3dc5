"""What an inline image costs in tokens, read from its own header (pure).

Vision models count an image by its pixels, not its bytes: Anthropic about
one token per 750 square pixels of the image scaled to fit 1568 pixels on
its long edge and at most ~1,600 tokens; Qwen-VL one token per 28 x 28
patch (784), close to the same. So the header's width and height give a
count a backend will be near, where the base64's length says nothing: a
small PNG icon and a 4K screenshot can be the same size on the wire.

Only the first bytes of the base64 are decoded: a PNG, GIF or WebP header
lies in its first 30 bytes, a JPEG's frame header after its metadata
segments (EXIF can take up to 64 KiB), so a JPEG's segments are decoded
one by one where they lie, a few bytes each. An image whose size cannot be
read counts the most: IMAGE_TOKENS.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Callable

IMAGE_TOKENS = 1600
PIXELS_PER_TOKEN = 750
MAX_EDGE = 1568
# Base64 characters decoded to find a PNG, GIF or WebP header, or to tell
# a JPEG, whose segments are then read where they lie.
_HEAD = 64
_JPEG = b"\xff\xd8\xff"
# Segments walked before a JPEG's frame header, at most: metadata, tables.
_MAX_SEGMENTS = 64
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic),
# whose segment holds the height and then the width.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# JPEG markers that stand alone, without a length.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


def image_tokens(width: int, height: int) -> int:
    """Tokens of an image `width` x `height` pixels, as Anthropic counts them."""
    if width <= 0 or height <= 0:
        return IMAGE_TOKENS
    longest = max(width, height)
    pixels = float(width * height)
    if longest > MAX_EDGE:
        pixels *= (MAX_EDGE / longest) ** 2
    return max(1, min(IMAGE_TOKENS, math.ceil(pixels / PIXELS_PER_TOKEN)))


def base64_image_tokens(b64: bytes | memoryview) -> int:
    """Tokens of the image whose base64 is `b64` (a JSON string's bytes, so
    an escaped slash or line break is read as JSON means it); IMAGE_TOKENS
    when its size cannot be read."""
    data = bytes(b64[:_HEAD])
    if b"\\" in data:  # escapes shift every offset: read the string unescaped
        b64 = _unescape(bytes(b64))
        data = b64[:_HEAD]
    head = _decode(data)
    if head.startswith(_JPEG):
        size = _jpeg_size(lambda at, n: _decode_at(b64, at, n))
    else:
        size = image_size(head)
    return IMAGE_TOKENS if size is None else image_tokens(*size)


def _unescape(data: bytes) -> bytes:
    # JSON may escape a slash, or wrap base64 in lines written as escapes.
    return data.replace(b"\\/", b"/").replace(b"\\n", b"").replace(b"\\r", b"")


def _decode(b64: bytes | memoryview) -> bytes:
    try:
        return binascii.a2b_base64(bytes(b64[: len(b64) - len(b64) % 4]))
    except binascii.Error:
        return b""


def _decode_at(b64: bytes | memoryview, at: int, n: int) -> bytes:
    """The `n` bytes from offset `at` of what `b64` encodes, decoding only
    the characters that hold them (each 4 encode 3)."""
    first = at // 3
    return _decode(b64[4 * first : 4 * -(-(at + n) // 3)])[at - 3 * first :][:n]


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG, GIF, WebP or JPEG file."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head.startswith(_JPEG):
        return _jpeg_size(lambda at, n: head[at : at + n])
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(head[26:28], "little") & 0x3FFF,
            int.from_bytes(head[28:30], "little") & 0x3FFF,
        )
    return None


def _jpeg_size(read: Callable[[int, int], bytes]) -> tuple[int, int] | None:
    """The size in the first start-of-frame segment, walking the segments
    from the start (each says its length); `read(at, n)` gives the file's
    bytes there, fewer at its end."""
    at = 2
    for _ in range(_MAX_SEGMENTS):
        seg = read(at, 9)
        if len(seg) < 4 or seg[0] != 0xFF:
            return None
        marker = seg[1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker in _STANDALONE:
            at += 2
        elif marker in _SOF:
            if len(seg) < 9:
                return None
            return int.from_bytes(seg[7:9], "big"), int.from_bytes(seg[5:7], "big")
        elif marker == 0xDA:  # start of scan: no frame header before it
            return None
        else:
            at += 2 + int.from_bytes(seg[2:4], "big")
    return None
