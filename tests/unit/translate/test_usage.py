"""Usage from OpenAI-compatible backends: absent cache details are unknown, not zero."""

from __future__ import annotations

import msgspec
import pytest

from coderouterd.routing.cost import cache_outcome
from coderouterd.translate.openai_passthrough import (
    OpenAIUsage,
    usage_from_openai,
    usage_of_completion,
)
from coderouterd.translate.stream_o2a import OpenAIToAnthropicStream
from coderouterd.translate.translated import OpenAIToAnthropicTranscoder
from coderouterd.translate.types import NO_TOOLS, OutputFilters


@pytest.mark.parametrize(
    ("details", "cache_read", "outcome"),
    [
        (None, None, "unknown"),
        ({}, None, "unknown"),
        ({"cached_tokens": 0}, 0, "none"),
        ({"cached_tokens": 30}, 30, "hit"),
    ],
)
def test_cache_details_decide_the_cache_outcome(
    details: dict[str, int] | None, cache_read: int | None, outcome: str
) -> None:
    usage_in: dict[str, object] = {"prompt_tokens": 100, "completion_tokens": 5}
    if details is not None:
        usage_in["prompt_tokens_details"] = details
    body = {"usage": usage_in}
    usage = usage_of_completion(msgspec.json.encode(body))
    assert usage is not None
    assert usage.cache_read_input_tokens == cache_read
    assert usage.input_tokens == 100 - (cache_read or 0)
    assert cache_outcome(usage, estimated=False) == outcome


def test_no_cache_writes_are_reported_only_when_cache_details_are() -> None:
    assert usage_from_openai(OpenAIUsage(prompt_tokens=1)).cache_creation_input_tokens is None
    details = {"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": 0}}
    with_details = usage_from_openai(msgspec.convert(details, OpenAIUsage))
    assert with_details.cache_creation_input_tokens == 0


def test_a_translated_stream_shows_the_client_zeros_but_accounts_the_cache_as_unknown() -> None:
    stream = OpenAIToAnthropicStream(
        message_id="msg_u",
        model="m",
        filters=OutputFilters(),
        names=NO_TOOLS,
        estimated_input_tokens=1,
    )
    transcoder = OpenAIToAnthropicTranscoder("p", stream)
    transcoder.feed(
        b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":12,"completion_tokens":3}}\n\ndata: [DONE]\n\n'
    )
    assert stream.usage["cache_read_input_tokens"] == 0  # what the client sees
    usage = transcoder.usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (12, 3)
    assert usage.cache_read_input_tokens is None and usage.cache_creation_input_tokens is None
    assert cache_outcome(usage, estimated=transcoder.usage_estimated) == "unknown"
