"""How an OpenAI-compatible stream ends, read by the transcoder for an Anthropic client.

A [DONE] before the model said anything is no answer; the last frame of a
body that lacks its blank line is read when it is whole, by the rule the
OpenAI passthrough shares (openai_passthrough.frames_left).
"""

from __future__ import annotations

import json

import pytest

from coderouterd.errors import UpstreamProtocolError
from coderouterd.translate.openai_passthrough import frames_left
from coderouterd.translate.stream_o2a import OpenAIToAnthropicStream
from coderouterd.translate.translated import OpenAIToAnthropicTranscoder
from coderouterd.translate.types import NO_TOOLS, OutputFilters
from coderouterd.wire.sse import SSEDecoder

ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
STOP = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}'


def transcoder() -> OpenAIToAnthropicTranscoder:
    stream = OpenAIToAnthropicStream(
        message_id="msg_t",
        model="m",
        filters=OutputFilters(),
        names=NO_TOOLS,
        estimated_input_tokens=9,
    )
    return OpenAIToAnthropicTranscoder("p", stream)


@pytest.mark.parametrize(
    ("left", "data"),
    [
        (b"", []),
        (b": keep-alive\n", []),
        (b"data: [DONE]", [b"[DONE]"]),
        (b"data: [DONE]\n", [b"[DONE]"]),
        (USAGE + b"\n", [USAGE.removeprefix(b"data: ")]),
        (USAGE, [USAGE.removeprefix(b"data: ")]),
        # Cut in the middle: not a frame.
        (USAGE[:-3], None),
        (b"data: ", None),
    ],
)
def test_frames_left_reads_a_whole_last_frame_only(left: bytes, data: list[bytes] | None) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(STOP + left) != []
    frames = frames_left(decoder)
    assert (None if frames is None else [f.data for f in frames]) == data
    for frame in frames or []:
        assert frame.raw.endswith(b"\n\n") and SSEDecoder().feed(frame.raw) == [frame]


@pytest.mark.parametrize("done", [b"data: [DONE]\n\n", b"data: [DONE]"])
def test_done_before_the_model_said_anything_is_no_answer(done: bytes) -> None:
    tc = transcoder()
    with pytest.raises(UpstreamProtocolError, match="before any content"):
        tc.feed(ROLE + done)
        tc.end()


def test_the_usage_chunk_without_its_blank_line_ends_the_answer_cleanly() -> None:
    tc = transcoder()
    outs = tc.feed(ROLE + STOP) + tc.feed(USAGE + b"\n")
    outs += tc.end()
    events = SSEDecoder().feed(b"".join(o.raw for o in outs))
    assert [e.event for e in events][-2:] == ["message_delta", "message_stop"]
    delta = json.loads(events[-2].data)
    assert delta["usage"]["output_tokens"] == 1
    assert tc.finished and not tc.usage_estimated
