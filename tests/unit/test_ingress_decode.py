"""Decoding a request body in gzip or deflate as its bytes arrive (ingress/decode.py)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from coderouterd.errors import BodyTooLargeError, InvalidRequestError, RequestError
from coderouterd.ingress.decode import Inflater, coding_of


def gzip_fixed(data: bytes) -> bytes:
    """gzip without a timestamp: the same bytes, so the same test ids, in
    every test process (pytest-xdist's workers must collect alike)."""
    return gzip.compress(data, mtime=0)


BODY = b'{"model":"m","messages":[{"role":"user","content":"' + b"hi " * 40 + b'"}]}'


def deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def decode(coding: str, pieces: list[bytes], limit: int = 10_000) -> bytes:
    inflater = Inflater(coding, limit)
    for piece in pieces:
        inflater.feed(piece)
    return inflater.finish()


def splits(data: bytes) -> list[list[bytes]]:
    """`data` whole, in two pieces at every byte boundary, and byte by byte."""
    return [
        [data],
        *([data[:k], data[k:]] for k in range(1, len(data))),
        [bytes([b]) for b in data],
    ]


ENCODED = [
    ("gzip", gzip_fixed(BODY)),
    ("x-gzip", gzip_fixed(BODY)),
    ("gzip", gzip_fixed(BODY[:30]) + gzip_fixed(BODY[30:])),
    ("deflate", zlib.compress(BODY)),
    ("deflate", deflate_raw(BODY)),
]


@pytest.mark.parametrize(("coding", "encoded"), ENCODED)
def test_a_body_decodes_the_same_however_its_bytes_arrive(coding: str, encoded: bytes) -> None:
    for pieces in splits(encoded):
        assert decode(coding, pieces) == BODY


@pytest.mark.parametrize(("coding", "encoded"), ENCODED)
def test_a_body_decoding_to_one_byte_past_the_limit_is_too_large(
    coding: str, encoded: bytes
) -> None:
    assert decode(coding, [encoded], limit=len(BODY)) == BODY
    for pieces in splits(encoded):
        with pytest.raises(BodyTooLargeError) as info:
            decode(coding, pieces, limit=len(BODY) - 1)
        assert info.value.field == "body"


def test_a_bomb_is_refused_without_decoding_it_whole() -> None:
    bomb = gzip_fixed(b" " * 200_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLargeError):
            Inflater("gzip", 1000).feed(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Far less than the 200 MB it decodes to: it stopped at the limit.
    assert peak < 1_000_000


@pytest.mark.parametrize(
    ("coding", "pieces", "why"),
    [
        ("gzip", [b"not gzip at all"], "corrupt"),
        ("gzip", [gzip_fixed(BODY)[:-4]], "cut short"),
        ("deflate", [zlib.compress(BODY)[:10]], "cut short"),
        ("gzip", [gzip_fixed(BODY), b"trailing"], "corrupt"),
        ("deflate", [zlib.compress(BODY), b"trailing"], "after the end"),
    ],
)
def test_a_body_that_does_not_decode_cannot_be_read(
    coding: str, pieces: list[bytes], why: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode(coding, pieces)
    assert info.value.field == "body"
    assert info.value.message.startswith("cannot be read")
    assert why in info.value.message


def test_an_empty_body_decodes_to_nothing() -> None:
    assert decode("gzip", []) == b""


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        ("gzip", "gzip"),
        (" GZIP ", "gzip"),
        ("x-gzip", "x-gzip"),
        ("deflate", "deflate"),
        ("identity", None),
        ("", None),
        ("gzip, identity", "gzip"),
    ],
)
def test_the_coding_a_header_names(header: str, coding: str | None) -> None:
    assert coding_of(header) == coding


@pytest.mark.parametrize("header", ["zstd", "br", "compress", "gzip, deflate", "gzip, gzip"])
def test_a_coding_the_daemon_cannot_decode_is_refused_naming_the_body(header: str) -> None:
    with pytest.raises(RequestError) as info:
        coding_of(header)
    assert (info.value.status, info.value.field) == (400, "body")
    assert "not supported" in info.value.message
