"""An inline image's tokens, read from the size in its own header."""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from coderouterd.translate.images import (
    IMAGE_TOKENS,
    base64_image_tokens,
    image_size,
    image_tokens,
)


def encoded(width: int, height: int, fmt: str, **save: Any) -> bytes:
    """An image as Pillow writes it: noise, so no encoder shortcut hides a header."""
    mode = "RGBA" if save.pop("alpha", False) else "RGB"
    img = Image.frombytes(mode, (width, height), os.urandom(width * height * len(mode)))
    out = io.BytesIO()
    img.save(out, format=fmt, **save)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "save"),
    [
        ("PNG", {}),
        ("GIF", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        # Metadata segments before the frame header: an ICC profile of 40 KB.
        ("JPEG", {"icc_profile": os.urandom(40_000)}),
        ("WEBP", {"lossless": False}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"lossless": False, "alpha": True}),  # the extended (VP8X) header
    ],
    ids=[
        "png",
        "gif",
        "jpeg",
        "jpeg-progressive",
        "jpeg-icc",
        "webp",
        "webp-lossless",
        "webp-vp8x",
    ],
)
@pytest.mark.parametrize("size", [(300, 200), (37, 911)])
def test_the_size_is_read_from_the_header(
    fmt: str, save: dict[str, Any], size: tuple[int, int]
) -> None:
    data = encoded(*size, fmt, **save)
    assert image_size(data) == size
    assert base64_image_tokens(base64.b64encode(data)) == image_tokens(*size)


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        # Anthropic's own table: about (width x height) / 750.
        (200, 200, 54),
        (1000, 1000, 1334),
        (1092, 1092, 1590),
        # Scaled to fit 1568 on its long edge, and at most ~1600 tokens: a
        # 4K screenshot costs what a 1.15 megapixel one does.
        (3840, 2160, IMAGE_TOKENS),
        (6000, 100, 55),  # a strip: 1568 x 26
        (1, 1, 1),
        (0, 10, IMAGE_TOKENS),  # no size to go by
    ],
)
def test_tokens_of_a_size(width: int, height: int, tokens: int) -> None:
    assert image_tokens(width, height) == tokens


def test_an_image_whose_size_cannot_be_read_counts_the_most() -> None:
    png = encoded(40, 40, "PNG")
    assert base64_image_tokens(base64.b64encode(os.urandom(5000))) == IMAGE_TOKENS
    assert base64_image_tokens(base64.b64encode(png)[:20]) == IMAGE_TOKENS  # cut short
    assert base64_image_tokens(b"!!not base64 at all!!" * 10) == IMAGE_TOKENS
    # A JPEG cut short in its metadata, before its frame header.
    jpeg = encoded(40, 40, "JPEG", icc_profile=os.urandom(20_000))
    assert base64_image_tokens(base64.b64encode(jpeg[:10_000])) == IMAGE_TOKENS
    assert base64_image_tokens(base64.b64encode(jpeg)) == image_tokens(40, 40)


def test_a_jpeg_is_read_where_its_frame_header_lies_however_far() -> None:
    """Camera metadata can take hundreds of KB before the frame header (an
    ICC profile in many segments): each segment's length is decoded where it
    lies, not the whole file."""
    jpeg = encoded(640, 480, "JPEG", icc_profile=os.urandom(300_000))
    b64 = base64.b64encode(jpeg)
    assert base64_image_tokens(b64) == image_tokens(640, 480)
    assert base64_image_tokens(b64.replace(b"/", b"\\/")) == image_tokens(640, 480)


def test_escapes_in_the_json_string_are_read_as_json_means_them() -> None:
    # A size whose header's base64 has a slash, so that it is escaped.
    width = 1008
    b64 = base64.b64encode(encoded(width, 9, "PNG"))
    assert b"/" in b64[:32]
    escaped = b64.replace(b"/", b"\\/")
    assert base64_image_tokens(escaped) == image_tokens(width, 9)
    wrapped = b"\\n".join(b64[i : i + 16] for i in range(0, len(b64), 16))
    assert base64_image_tokens(wrapped) == image_tokens(width, 9)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_count_and_never_raise(data: bytes) -> None:
    for head in (data, b"\xff\xd8\xff" + data, b"RIFF\0\0\0\0WEBP" + data):
        assert 1 <= base64_image_tokens(base64.b64encode(head)) <= IMAGE_TOKENS
