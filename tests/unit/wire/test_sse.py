"""The SSE decoder gives the same frames however the bytes are split."""

from __future__ import annotations

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
