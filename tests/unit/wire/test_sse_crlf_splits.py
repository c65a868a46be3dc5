"""The SSE decoder gives the frames a whole-input reference parser gives,
however the bytes are split: CRLF and CR frame ends too, spread over chunks
of one or two bytes, after frames large enough to be held as a list of
chunks (wire/sse.py `_LIST_AT`)."""

from __future__ import annotations

import itertools
import random

from coderouterd.wire.sse import SSEDecoder, parse_frame

# A frame ends at a blank line, whatever mix of line ends makes it; at one
# position the first of these that matches is the one (as the decoder's
# pattern lists them).
FRAME_ENDS = (b"\r\n\r\n", b"\n\n", b"\r\r", b"\r\n\n", b"\n\r\n")
# Large frames: past the size at which the decoder holds a frame as chunks.
LARGE = 17 * 1024
CASES = 300


def reference(data: bytes) -> tuple[list[tuple[str, bytes, bytes]], bytes]:
    """The events of `data` read whole, and what is left after the last frame end."""
    events: list[tuple[str, bytes, bytes]] = []
    start = 0
    while True:
        found = [
            (at, i, end) for i, end in enumerate(FRAME_ENDS) if (at := data.find(end, start)) != -1
        ]
        if not found:
            return events, data[start:]
        at, _, end = min(found)
        parsed = parse_frame(data[start:at])
        if parsed is not None:
            events.append((parsed[0], parsed[1], data[start : at + len(end)]))
        start = at + len(end)


def decoded(chunks: list[bytes]) -> tuple[list[tuple[str, bytes, bytes]], bytes]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events += [(e.event, e.data, e.raw) for e in decoder.feed(chunk)]
    return events, decoder.pending


def random_stream(rng: random.Random) -> bytes:
    """Frames of named events, data lines, comments, small and large, each with
    its own line end (or, now and then, a mix)."""
    out = b""
    for n in range(rng.randint(1, 5)):
        eol = rng.choice((b"\n", b"\r\n", b"\r"))
        size = rng.choice((rng.randint(0, 40), rng.randint(LARGE, LARGE + 4096)))
        lines = [b"event: e%d" % n] if rng.random() < 0.7 else []
        if rng.random() < 0.2:
            lines.append(b": comment")
        lines += [b'data: {"x":"' + b"y" * size + b'"}'] * rng.randint(1, 2)
        ends = [rng.choice((b"\n", b"\r\n", b"\r")) if rng.random() < 0.1 else eol for _ in lines]
        out += b"".join(line + end for line, end in zip(lines, ends, strict=True))
        out += rng.choice((b"\n", b"\r\n", b"\r")) if rng.random() < 0.1 else eol
    if rng.random() < 0.3:
        out += b"data: cut"  # the stream ends in the middle of a frame
    return out


def random_cuts(rng: random.Random, data: bytes) -> list[bytes]:
    """Cuts anywhere, and cuts around line ends: chunks of one or two bytes
    there spread a frame end over several chunks."""
    line_ends = [i for i, b in enumerate(data) if b in b"\r\n"]
    cuts = {rng.randint(0, len(data)) for _ in range(rng.randint(0, 6))}
    for i in rng.sample(line_ends, min(len(line_ends), rng.randint(0, 12))):
        cuts.update(i + d for d in (-1, 0, 1, 2) if rng.random() < 0.5)
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_random_splits_give_the_reference_frames() -> None:
    rng = random.Random(20240611)
    for _ in range(CASES):
        data = random_stream(rng)
        chunks = random_cuts(rng, data)
        assert decoded(chunks) == reference(data), [len(c) for c in chunks]


def test_a_crlf_frame_end_over_three_chunks_after_a_large_frame_keeps_the_frames_apart() -> None:
    # The blank line as "\r\n", "\r", then "\n" with the next frame, whose
    # own end comes last: a large frame, then a small one.
    big = b'event: content_block_delta\r\ndata: {"x":"' + b"y" * 40_000 + b'"}\r\n\r\n'
    small = b'event: message_stop\r\ndata: {"type":"message_stop"}\r\n\r\n'
    data = big + small
    n, m = len(big), len(data) - 4
    chunks = [data[: n - 4], data[n - 4 : n - 2], data[n - 2 : n - 1], data[n - 1 : m], data[m:]]
    assert chunks[1:3] == [b"\r\n", b"\r"]
    events, pending = decoded(chunks)
    assert [(e[0], e[2]) for e in events] == [("content_block_delta", big), ("message_stop", small)]
    assert pending == b""


def test_a_mixed_frame_end_in_one_byte_chunks_after_a_large_frame() -> None:
    # "\n" then "\r\n": a blank line too, its bytes one chunk each.
    big = b"data: " + b"y" * 40_000 + b"\n"
    data = big + b"\r\ndata: z\r\r"
    chunks = [big, *(bytes([b]) for b in data[len(big) :])]
    assert decoded(chunks) == reference(data)
    assert [e[1] for e in decoded(chunks)[0]] == [b"y" * 40_000, b"z"]
