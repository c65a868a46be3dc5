"""Whatever bytes a provider streams, a transcoder answers with frames or an
UpstreamError (which the engine turns into a fallback or an error frame),
never with another exception (which would cut the client's stream)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from coderouterd.errors import UpstreamError, UpstreamProtocolError
from coderouterd.routing.streams import read_frames
from coderouterd.routing.upstream import Out, Transcoder
from coderouterd.translate.anthropic_passthrough import AnthropicPassthrough
from coderouterd.translate.openai_passthrough import OpenAIPassthrough
from coderouterd.translate.response_a2o import AnthropicToOpenAIStream
from coderouterd.translate.stream_o2a import OpenAIToAnthropicStream
from coderouterd.translate.translated import (
    AnthropicToOpenAITranscoder,
    OpenAIToAnthropicTranscoder,
)
from coderouterd.translate.types import OutputFilters, ToolNames

# The words the transcoders look for, so that the shapes they read are hit.
_KEYS = st.sampled_from(
    [
        "choices", "delta", "content", "tool_calls", "function", "name", "arguments",
        "index", "id", "usage", "finish_reason", "reasoning_content", "error", "message",
        "type", "text", "partial_json", "input", "content_block", "prompt_tokens",
        "completion_tokens", "prompt_tokens_details", "cached_tokens", "input_tokens",
        "output_tokens", "stop_reason", "thinking", "signature", "role", "function_call",
    ]
)  # fmt: skip
_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["text", "tool_use", "text_delta", "input_json_delta", "<think>", "stop"]),
)
_VALUE = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)
_EVENTS = st.sampled_from(
    [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop", "ping", "error",
    ]
)  # fmt: skip


def _filters() -> OutputFilters:
    return msgspec.convert(
        {"think": "thinking", "repair_tool_calls": True, "strip_tool_markup": True}, OutputFilters
    )


TRANSCODERS: dict[str, tuple[bool, Callable[[], Transcoder]]] = {
    "openai-to-anthropic": (
        False,
        lambda: OpenAIToAnthropicTranscoder(
            "p",
            OpenAIToAnthropicStream(
                message_id="msg_x",
                model="m",
                filters=_filters(),
                names=ToolNames(frozenset({"Read"})),
                estimated_input_tokens=10,
            ),
        ),
    ),
    "anthropic-to-openai": (
        True,
        lambda: AnthropicToOpenAITranscoder(
            "p",
            AnthropicToOpenAIStream(completion_id="c", model="m", created=1),
            include_usage=True,
        ),
    ),
    "anthropic-passthrough": (True, lambda: AnthropicPassthrough("p")),
    "openai-passthrough": (False, lambda: OpenAIPassthrough("p", forward_usage=True)),
}


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames=st.lists(st.tuples(_EVENTS, _VALUE), min_size=1, max_size=6))
@example(frames=[("message_start", {"choices": 5.0})])  # found so, once
@pytest.mark.parametrize("path", TRANSCODERS)
def test_any_frames_give_frames_or_an_upstream_error(
    path: str, frames: list[tuple[str, Any]]
) -> None:
    named, make = TRANSCODERS[path]
    raw = b"".join(
        (b"event: " + event.encode() + b"\n" if named else b"")
        + b"data: "
        + json.dumps(data).encode()
        + b"\n\n"
        for event, data in frames
    )
    tc = make()
    try:
        tc.feed(raw)
        tc.end()
    except UpstreamError:
        pass


class _Surprised:
    """A transcoder meeting a shape of bytes it was not written for: what the
    property above hunts for, and what read_frames must still turn into a
    stream's failure."""

    final_event = "message_stop"
    finished = False
    upstream_error = None
    upstream_error_body = b""

    def feed(self, chunk: bytes) -> list[Out]:
        raise TypeError("'float' object is not iterable")

    def end(self) -> list[Out]:
        return []


def test_a_transcoder_raising_anything_else_fails_the_stream_as_unreadable() -> None:
    with pytest.raises(UpstreamProtocolError) as info:
        read_frames("local", _Surprised(), b"data: {}\n\n")  # type: ignore[arg-type]
    assert info.value.detail == "unreadable stream (TypeError)"
