"""The counts a whole answer is accounted at: OpenAI usage read as
Anthropic's (cache reads and writes apart from the input), and the counts
a backend left out estimated as a stream's are."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from coderouterd.routing.call import Call
from coderouterd.translate.answer_usage import answer_usage, completion_usage, message_usage
from coderouterd.translate.estimate import estimate_prompt_tokens
from coderouterd.translate.openai_passthrough import (
    OpenAIUsage,
    produced_in_completion,
    usage_from_openai,
)
from coderouterd.translate.response_o2a import anthropic_usage
from coderouterd.wire.usage import Usage, anthropic_counts, openai_counts

CALL = Call(
    request_id="r",
    dialect="anthropic",
    fields={"messages": msgspec.Raw(b'[{"role":"user","content":"' + b"x" * 80 + b'"}]')},
    headers={},
    stream=False,
    requested_model="m",
    profile="p",
)
PROMPT = estimate_prompt_tokens(CALL.fields)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # prompt, completion, cached, written -> input, output, write, read
        ((150, 5, 100, 40), (10, 5, 40, 100)),
        ((150, 5, 100, None), (50, 5, 0, 100)),
        ((150, 5, None, 40), (110, 5, 40, 0)),
        ((150, 5, None, None), (150, 5, None, None)),
        # More cache tokens than prompt tokens: no input, never below 0.
        ((120, 5, 100, 40), (0, 5, 40, 100)),
        ((None, 5, 100, 40), (None, 5, 40, 100)),
    ],
    ids=["both", "reads", "writes", "no-details", "inconsistent", "no-prompt"],
)
def test_openai_counts_are_split_as_anthropic_counts_them(
    counts: tuple[int | None, ...], expected: tuple[int | None, ...]
) -> None:
    usage = anthropic_counts(*counts)
    got = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
    )
    assert got == expected


def test_every_reader_of_openai_usage_splits_the_cache_writes_alike() -> None:
    """The decoded usage (translated paths), the Struct (passthrough) and
    the translated client's usage object read the same counts."""
    raw: dict[str, Any] = {
        "prompt_tokens": 150,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 40},
    }
    expected = Usage(
        input_tokens=10,
        output_tokens=5,
        cache_creation_input_tokens=40,
        cache_read_input_tokens=100,
    )
    assert openai_counts(raw) == expected
    assert usage_from_openai(msgspec.convert(raw, OpenAIUsage)) == expected
    told, estimated = anthropic_usage(raw, estimated_input_tokens=999, output_chars=0)
    assert told == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 40,
        "cache_read_input_tokens": 100,
    }
    assert not estimated


def test_counts_that_are_no_counts_are_read_as_not_reported() -> None:
    raw = {"prompt_tokens": "150", "prompt_tokens_details": {"cache_write_tokens": True}}
    assert openai_counts(raw) == Usage()


def test_reported_input_and_output_are_taken_without_reading_the_answer() -> None:
    reported = Usage(input_tokens=3, output_tokens=4)

    def unread() -> int:
        raise AssertionError("the answer was read")

    assert answer_usage(reported, CALL, unread) == (reported, False)


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        (None, (PROMPT, 10, None)),
        (Usage(), (PROMPT, 10, None)),
        (Usage(input_tokens=3), (3, 10, None)),
        (Usage(output_tokens=4, cache_read_input_tokens=2), (PROMPT, 4, 2)),
    ],
    ids=["none", "empty", "input-only", "output-only"],
)
def test_the_counts_left_out_are_estimated_and_the_rest_kept(
    reported: Usage | None, expected: tuple[int | None, ...]
) -> None:
    usage, estimated = answer_usage(reported, CALL, lambda: 40)
    assert usage is not None and estimated
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == expected


def test_an_anthropic_messages_output_is_counted_as_its_content_json() -> None:
    content = [{"type": "text", "text": "y" * 100}, {"type": "tool_use", "input": {"a": 1}}]
    encoded = len(msgspec.json.encode(content))
    usage, _ = message_usage(None, {"content": content}, CALL)
    assert usage is not None and usage.output_tokens == -(-encoded // 4)


def test_an_openai_completions_output_is_counted_as_its_streamed_deltas_would_be() -> None:
    call = {"function": {"name": "Read", "arguments": '{"file_path":"/a"}'}}
    message = {"content": "y" * 10, "reasoning_content": "z" * 6, "tool_calls": [call]}
    body = msgspec.json.encode({"choices": [{"index": 0, "message": message}]})
    assert produced_in_completion(body) == 10 + 6 + len("Read") + len('{"file_path":"/a"}')
    usage, estimated = completion_usage(None, body, CALL)
    assert usage is not None and estimated and usage.output_tokens == 10


def test_a_completion_whose_messages_cannot_be_read_counts_its_whole_body() -> None:
    body = b'{"choices":[{"message":{"content":[{"type":"text","text":"hi"}]}}]}'
    assert produced_in_completion(body) == len(body)
