"""The SSE decoder gives the same frames however the bytes are split."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from coderouterd.wire.sse import SSEDecoder, encode_event, parse_frame

STREAM = (
    b'event: message_start\ndata: {"type":"message_start"}\n\n'
    b": keep-alive comment\n\n"
    b'event: content_block_delta\ndata: {"text":"caf\xc3\xa9"}\n\n'
    b'data: {"openai":true}\n\n'
    b"event: multi\ndata: line1\ndata: line2\n\n"
)


def decode_in_pieces(data: bytes, cuts: list[int]) -> list[tuple[str, bytes]]:
    decoder = SSEDecoder()
    out, start = [], 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += [(e.event, e.data) for e in decoder.feed(data[start:cut])]
        start = cut
    assert decoder.pending == b""
    return out


EXPECTED = [
    ("message_start", b'{"type":"message_start"}'),
    ("content_block_delta", b'{"text":"caf\xc3\xa9"}'),
    ("message", b'{"openai":true}'),
    ("multi", b"line1\nline2"),
]


def test_every_single_split_point_gives_the_same_events() -> None:
    for cut in range(len(STREAM) + 1):
        assert decode_in_pieces(STREAM, [cut]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_splitting_gives_the_same_events(cuts: list[int]) -> None:
    assert decode_in_pieces(STREAM, cuts) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM) * 2), max_size=8))
def test_crlf_line_endings(cuts: list[int]) -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert decode_in_pieces(crlf, cuts) == EXPECTED


def test_raw_bytes_are_kept_for_forwarding() -> None:
    events = SSEDecoder().feed(STREAM)
    assert b"".join(e.raw for e in events) == STREAM.replace(b": keep-alive comment\n\n", b"")


def test_incomplete_frame_stays_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: x\ndata: {") == []
    assert decoder.pending == b"event: x\ndata: {"


def test_field_without_space_and_unknown_fields() -> None:
    assert parse_frame(b"event:ping\ndata:{}\nid: 7\nretry: 10") == ("ping", b"{}")
    assert parse_frame(b": only a comment") is None


def test_encode_round_trips() -> None:
    for name, data in EXPECTED:
        assert [(e.event, e.data) for e in SSEDecoder().feed(encode_event(name, data))] == [
            (name, data)
        ]


def test_cr_only_line_endings_split_at_every_point() -> None:
    cr = STREAM.replace(b"\n", b"\r")
    for cut in range(len(cr) + 1):
        assert decode_in_pieces(cr, [cut]) == EXPECTED


def test_a_frame_end_split_across_three_chunks_is_found() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r") == []
    assert [e.data for e in decoder.feed(b"\ndata: 2\n\n")] == [b"1", b"2"]
    assert decoder.pending == b""


def work_for_one_frame(size: int, chunk: int) -> int:
    frame = b"data: " + b"x" * size + b"\n\n"
    decoder = SSEDecoder()
    events = []
    for i in range(0, len(frame), chunk):
        events += decoder.feed(frame[i : i + chunk])
    assert [len(e.data) for e in events] == [size]
    assert decoder.pending == b""
    return decoder.scanned


def test_a_huge_frame_in_small_chunks_costs_linear_work() -> None:
    # Each byte is searched about once on arrival and copied about once when
    # the frame is joined; rescanning or recopying what is held on every chunk
    # would be quadratic.
    small = work_for_one_frame(1_000_000, 1024)
    large = work_for_one_frame(2_000_000, 1024)
    assert small <= 3 * 1_000_000
    assert large <= 2.1 * small


def test_a_frame_end_right_after_a_large_incomplete_frame_is_found() -> None:
    for cut in (1, 2, 3):
        body = b"data: " + b"y" * 40_000 + b"\n\n" + b"data: z\n\n"
        end = body.index(b"\n\n")
        decoder = SSEDecoder()
        events = decoder.feed(body[: end + cut - 1]) + decoder.feed(body[end + cut - 1 :])
        assert [len(e.data) for e in events] == [40_000, 1]


def test_an_error_field_reads_as_an_error_chunks_data() -> None:
    """llama.cpp before late 2025: `error: {...}` on a frame of its own."""
    events = SSEDecoder().feed(
        b'error: {"code":400,"message":"too long","type":"exceed_context_size_error"}\n\n'
        b"error: backend crashed\n\n"
    )
    assert [json.loads(e.data) for e in events] == [
        {"error": {"code": 400, "message": "too long", "type": "exceed_context_size_error"}},
        {"error": "backend crashed"},
    ]
