"""Recorded transcripts as bytes through the whole OpenAI-to-Anthropic transcoder.

The stream tests feed decoded chunks to the inner state machine; these feed
the upstream's bytes, cut anywhere, through the transcoder the engine uses
(SSE decoding, [DONE], the end of the body) and read back the Anthropic
frames it writes, so the glue between the pieces is covered too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coderouterd.routing.upstream import Out
from coderouterd.translate.translated import OpenAIToAnthropicTranscoder
from coderouterd.wire.sse import SSEDecoder
from tests.unit.translate.test_stream_o2a import NAMES, assemble, check_sequence, load, make_stream

DONE_FRAME = b"data: [DONE]\n\n"


def transcode(
    raw: bytes, cuts: list[int], config: dict[str, Any]
) -> tuple[OpenAIToAnthropicTranscoder, list[Out]]:
    transcoder = OpenAIToAnthropicTranscoder("p", make_stream(config))
    outs: list[Out] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(raw)]:
        outs += transcoder.feed(raw[start:cut])
        start = cut
    # [DONE] itself ends the message, before the body ends.
    assert transcoder.finished is raw.endswith(DONE_FRAME)
    outs += transcoder.end()
    return transcoder, outs


def frames(outs: list[Out]) -> list[tuple[str, dict[str, Any]]]:
    decoder = SSEDecoder()
    events = decoder.feed(b"".join(o.raw for o in outs))
    assert decoder.pending == b""
    return [(e.event, json.loads(e.data)) for e in events]


def run_bytes(name: str, raw: bytes, cuts: list[int]) -> None:
    _, config, expected = load(name)
    transcoder, outs = transcode(raw, cuts, config)
    events = frames(outs)
    check_sequence(events)
    assert assemble(events) == {k: expected[k] for k in ("content", "stop_reason", "usage")}
    assert transcoder.finished and transcoder.upstream_error is None
    assert transcoder.repairs == expected["repairs"]
    assert transcoder.usage_estimated is expected["usage_estimated"]
    # Only message_start precedes the first content frame: nothing else is held back.
    flags = [o.content for o in outs]
    assert flags[0] is False and (all(flags[1:]) if expected["content"] else True)


@pytest.mark.parametrize("name", NAMES)
def test_transcript_bytes_cut_at_every_single_point_give_the_golden_message(name: str) -> None:
    raw, _, _ = load(name)
    for cut in range(len(raw) + 1):
        run_bytes(name, raw, [cut])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_transcript_bytes_cut_anywhere_give_the_golden_message(
    data: st.DataObject, name: str
) -> None:
    raw, _, _ = load(name)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=16))
    run_bytes(name, raw, cuts)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_transcript_without_done_ending_cleanly_gives_the_golden_message(
    data: st.DataObject, name: str
) -> None:
    raw, _, _ = load(name)
    assert raw.endswith(DONE_FRAME)
    raw = raw.removesuffix(DONE_FRAME)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    run_bytes(name, raw, cuts)


@pytest.mark.parametrize("name", NAMES)
def test_transcript_cut_before_its_finish_reason_never_ends_the_message(name: str) -> None:
    raw, config, _ = load(name)
    head = raw[: raw.index(b'"finish_reason":"')]
    head = head[: head.rindex(b"\n\n") + 2] if b"\n\n" in head else b""
    transcoder, outs = transcode(head, [], config)
    names = [n for n, _ in frames(outs)]
    assert "message_delta" not in names and "message_stop" not in names
    assert not transcoder.finished  # the engine ends the stream with an error event
