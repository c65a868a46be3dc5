"""The Anthropic passthrough's usage when the stream ends without the final
`message_delta` count: estimated from the content deltas' bytes (four a
token), the input reported or else the prompt's estimate."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from coderouterd.translate.anthropic_passthrough import AnthropicPassthrough
from coderouterd.wire.usage import Usage


def frame(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def start(usage: dict[str, int] | None) -> bytes:
    message: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant"}
    if usage is not None:
        message["usage"] = usage
    return frame("message_start", {"type": "message_start", "message": message})


def delta(index: int, body: dict[str, str]) -> bytes:
    return frame(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": body}
    )


STARTED = start({"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 7})
TEXT = delta(0, {"type": "text_delta", "text": "x" * 400})
THINKING = delta(0, {"type": "thinking_delta", "thinking": "y" * 400})
TOOL_INPUT = delta(1, {"type": "input_json_delta", "partial_json": "z" * 400})


@pytest.mark.parametrize(
    ("frames", "output_tokens"),
    [
        ([STARTED], 1),
        ([STARTED, TEXT], 100),
        ([STARTED, TEXT, TEXT, TEXT], 300),
        # Their envelopes are a few bytes longer than a text delta's: counted high.
        ([STARTED, THINKING], 102),
        ([STARTED, TOOL_INPUT], 104),
        # message_start's own count, when it says more than was streamed.
        ([start({"input_tokens": 10, "output_tokens": 500}), TEXT], 500),
    ],
    ids=["nothing", "text", "texts", "thinking", "tool_input", "start_says_more"],
)
def test_a_stream_cut_before_its_final_usage_is_estimated_from_what_it_streamed(
    frames: list[bytes], output_tokens: int
) -> None:
    tc = AnthropicPassthrough("p", prompt_tokens=lambda: 999)
    body = b"".join(frames)
    # Split at every byte: the count does not depend on how the chunks fall.
    for i in range(len(body)):
        tc.feed(body[i : i + 1])
    assert tc.usage_estimated
    assert tc.usage is not None
    assert (tc.usage.input_tokens, tc.usage.output_tokens) == (10, output_tokens)


def test_a_stream_cut_keeps_the_cache_counts_it_was_told() -> None:
    tc = AnthropicPassthrough("p")
    tc.feed(STARTED + TEXT)
    assert tc.usage_estimated
    assert tc.usage == Usage(input_tokens=10, output_tokens=100, cache_read_input_tokens=7)


def test_a_stream_that_reports_no_usage_takes_the_prompt_estimate() -> None:
    stop = frame("message_stop", {"type": "message_stop"})
    ended = frame("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}})
    tc = AnthropicPassthrough("p", prompt_tokens=lambda: 42)
    tc.feed(start(None) + TEXT + ended + stop)
    assert tc.finished
    assert tc.usage_estimated
    assert tc.usage == Usage(input_tokens=42, output_tokens=100)


def test_a_stream_with_its_final_usage_is_accounted_as_reported() -> None:
    """The boundary of the estimate: the final count stands, however many
    bytes the deltas held."""
    ended = frame(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 5},
        },
    )
    tc = AnthropicPassthrough("p", prompt_tokens=lambda: 999)
    tc.feed(STARTED + TEXT * 20 + ended)
    assert not tc.usage_estimated
    assert tc.usage == Usage(input_tokens=10, output_tokens=5, cache_read_input_tokens=7)
