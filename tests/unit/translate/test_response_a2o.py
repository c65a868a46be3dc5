"""Anthropic responses and streams as OpenAI chat completions and chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coderouterd.translate.response_a2o import (
    AnthropicToOpenAIStream,
    anthropic_to_openai_response,
    openai_finish_reason,
    openai_usage,
)

USAGE = {
    "input_tokens": 10,
    "output_tokens": 25,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
}
OPENAI_USAGE = {
    "prompt_tokens": 1210,
    "completion_tokens": 25,
    "total_tokens": 1235,
    "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 200},
}


def message(
    content: list[Any], stop_reason: str | None = "end_turn", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": USAGE,
        **extra,
    }


def test_a_text_response() -> None:
    out = anthropic_to_openai_response(message([{"type": "text", "text": "Hello"}]), created=1700)
    assert out == {
        "id": "msg_01",
        "object": "chat.completion",
        "created": 1700,
        "model": "claude-sonnet-4-5",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": OPENAI_USAGE,
    }


def test_tool_use_thinking_and_several_text_blocks() -> None:
    content = [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "I'll read "},
        {"type": "text", "text": "both."},
        {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}},
        {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
        {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"path": "ü"}},
    ]
    out = anthropic_to_openai_response(message(content, "tool_use"), created=1)
    assert out["choices"][0]["message"] == {
        "role": "assistant",
        "content": "I'll read both.",
        "reasoning_content": "Let me think.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "Read", "arguments": '{"path":"a"}'},
            },
            {
                "id": "toolu_2",
                "type": "function",
                "function": {"name": "Read", "arguments": '{"path":"ü"}'},
            },
        ],
    }
    assert out["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_calls_alone_have_null_content_and_nothing_is_empty_text() -> None:
    only_tool = [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]
    reply = anthropic_to_openai_response(message(only_tool, "tool_use"), created=1)
    assert reply["choices"][0]["message"]["content"] is None
    empty = anthropic_to_openai_response(message([], "end_turn"), created=1)
    assert empty["choices"][0]["message"] == {"role": "assistant", "content": ""}


STOP_REASONS = [
    ("end_turn", "stop"),
    ("stop_sequence", "stop"),
    ("pause_turn", "stop"),
    ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"),
    ("tool_use", "tool_calls"),
    ("refusal", "content_filter"),
    ("a_reason_from_the_future", "stop"),
    (None, "stop"),
]


@pytest.mark.parametrize(("stop_reason", "finish_reason"), STOP_REASONS)
def test_stop_reason_maps_to_finish_reason_as_an_open_set(
    stop_reason: str | None, finish_reason: str
) -> None:
    assert openai_finish_reason(stop_reason) == finish_reason
    reply = anthropic_to_openai_response(message([], stop_reason), created=1)
    assert reply["choices"][0]["finish_reason"] == finish_reason


USAGES = [
    (USAGE, OPENAI_USAGE),
    (
        {"input_tokens": 5, "output_tokens": 7},
        {
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        },
    ),
    (
        {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": None},
        {
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        },
    ),
    (
        None,
        {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        },
    ),
]


@pytest.mark.parametrize(("usage", "expected"), USAGES)
def test_usage_is_always_complete(usage: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    assert openai_usage(usage) == expected
    reply = anthropic_to_openai_response(message([], usage=usage), created=1)
    assert reply["usage"] == expected


# Streams.


def start(usage: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    usage = usage or {
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 200,
    }
    body = message([], None, usage=usage)
    return "message_start", {"type": "message_start", "message": body}


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {
        "type": "content_block_start",
        "index": index,
        "content_block": block,
    }


def delta(index: int, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": body}


def stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int) -> tuple[str, dict[str, Any]]:
    body = {"stop_reason": stop_reason, "stop_sequence": None}
    return "message_delta", {
        "type": "message_delta",
        "delta": body,
        "usage": {"output_tokens": output_tokens},
    }


def run(
    events: list[tuple[str, dict[str, Any]]],
) -> tuple[AnthropicToOpenAIStream, list[dict[str, Any]]]:
    stream = AnthropicToOpenAIStream(completion_id="chatcmpl-1", model="local-model", created=1700)
    chunks = [chunk for name, data in events for chunk in stream.feed(name, data)]
    return stream, chunks


def deltas(chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str | None]]:
    return [
        (c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks if c["choices"]
    ]


def test_a_text_stream() -> None:
    events = [
        start(),
        ("ping", {"type": "ping"}),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Hel"}),
        delta(0, {"type": "text_delta", "text": "lo"}),
        stop(0),
        message_delta("end_turn", 12),
        ("message_stop", {"type": "message_stop"}),
    ]
    stream, chunks = run(events)
    assert chunks[0] == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700,
        "model": "local-model",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    assert deltas(chunks)[1:] == [
        ({"content": "Hel"}, None),
        ({"content": "lo"}, None),
        ({}, "stop"),
    ]
    assert stream.finish_reason == "stop"
    assert stream.finish(include_usage=True) == [
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700,
            "model": "local-model",
            "choices": [],
            "usage": {
                "prompt_tokens": 1210,
                "completion_tokens": 12,
                "total_tokens": 1222,
                "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 200},
            },
        }
    ]
    assert stream.finish(include_usage=False) == []


def test_tool_calls_are_numbered_from_zero_whatever_the_block_index() -> None:
    events = [
        start(),
        block_start(0, {"type": "thinking", "thinking": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "hmm"}),
        delta(0, {"type": "signature_delta", "signature": "sig"}),
        stop(0),
        block_start(1, {"type": "text", "text": ""}),
        delta(1, {"type": "text_delta", "text": "Reading."}),
        stop(1),
        block_start(2, {"type": "tool_use", "id": "toolu_a", "name": "Read", "input": {}}),
        delta(2, {"type": "input_json_delta", "partial_json": ""}),
        delta(2, {"type": "input_json_delta", "partial_json": '{"path":'}),
        delta(2, {"type": "input_json_delta", "partial_json": '"a"}'}),
        stop(2),
        block_start(3, {"type": "tool_use", "id": "toolu_b", "name": "Ls", "input": {}}),
        delta(3, {"type": "input_json_delta", "partial_json": "{}"}),
        stop(3),
        message_delta("tool_use", 30),
    ]
    _, chunks = run(events)
    assert deltas(chunks) == [
        ({"role": "assistant", "content": ""}, None),
        ({"reasoning_content": "hmm"}, None),
        ({"content": "Reading."}, None),
        (
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_a",
                        "type": "function",
                        "function": {"name": "Read", "arguments": ""},
                    }
                ]
            },
            None,
        ),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"path":'}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '"a"}'}}]}, None),
        (
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "toolu_b",
                        "type": "function",
                        "function": {"name": "Ls", "arguments": ""},
                    }
                ]
            },
            None,
        ),
        ({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}, None),
        ({}, "tool_calls"),
    ]


def test_a_tool_use_start_carrying_its_whole_input_is_sent_once() -> None:
    events = [
        start(),
        block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}),
        stop(0),
        block_start(1, {"type": "tool_use", "id": "u", "name": "g", "input": {"b": 2}}),
        delta(1, {"type": "input_json_delta", "partial_json": '{"b":2}'}),
        stop(1),
    ]
    _, chunks = run(events)
    arguments = [
        call["function"]["arguments"] for d, _ in deltas(chunks) for call in d.get("tool_calls", [])
    ]
    assert arguments == ["", '{"a":1}', "", '{"b":2}']


def test_a_call_without_arguments_gets_an_empty_object() -> None:
    """A tool without parameters: Anthropic sends one empty partial_json. The
    client's arguments must parse as JSON, as in the whole reply."""
    events = [
        start(),
        block_start(0, {"type": "tool_use", "id": "t", "name": "now", "input": {}}),
        delta(0, {"type": "input_json_delta", "partial_json": ""}),
        stop(0),
        block_start(1, {"type": "tool_use", "id": "u", "name": "later", "input": {}}),
        stop(1),
    ]
    _, chunks = run(events)
    arguments: dict[int, str] = {}
    for d, _ in deltas(chunks):
        for call in d.get("tool_calls", []):
            arguments[call["index"]] = (
                arguments.get(call["index"], "") + call["function"]["arguments"]
            )
    assert arguments == {0: "{}", 1: "{}"}


def test_without_message_start_the_first_chunk_still_carries_the_role() -> None:
    _, chunks = run(
        [
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "x"}),
        ]
    )
    assert deltas(chunks) == [({"role": "assistant", "content": "x"}, None)]


def test_an_error_event_yields_nothing_and_is_kept() -> None:
    error = {"type": "overloaded_error", "message": "Overloaded"}
    stream, chunks = run([start(), ("error", {"type": "error", "error": error})])
    assert len(chunks) == 1
    assert stream.error == error
    assert stream.finish_reason is None


def test_unknown_events_and_deltas_are_ignored() -> None:
    events = [
        start(),
        ("a_new_event", {"type": "a_new_event"}),
        block_start(0, {"type": "a_new_block"}),
        delta(0, {"type": "a_new_delta", "x": 1}),
        delta(0, {"type": "citations_delta", "citation": {}}),
        delta(5, {"type": "input_json_delta", "partial_json": "{}"}),
        stop(0),
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 3}}),
    ]
    _, chunks = run(events)
    assert len(chunks) == 1


def test_the_event_name_may_come_from_the_data() -> None:
    stream = AnthropicToOpenAIStream(completion_id="c", model="m", created=0)
    _, data = delta(0, {"type": "text_delta", "text": "hi"})
    assert stream.feed("", data)[0]["choices"][0]["delta"] == {"role": "assistant", "content": "hi"}


def test_usage_is_cumulative_and_never_goes_back() -> None:
    events = [
        start({"input_tokens": 50, "output_tokens": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": None},
                "usage": {"output_tokens": 10, "input_tokens": 0},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 20, "cache_read_input_tokens": 5},
            },
        ),
    ]
    stream, chunks = run(events)
    assert deltas(chunks)[-1] == ({}, "length")
    assert stream.usage == {
        "input_tokens": 50,
        "output_tokens": 20,
        "cache_read_input_tokens": 5,
        "cache_creation_input_tokens": 0,
    }
    [last] = stream.finish(include_usage=True)
    assert last["usage"]["prompt_tokens"] == 55


def test_one_finish_reason_however_many_message_deltas_say_it() -> None:
    def stop(tokens: int) -> tuple[str, dict[str, Any]]:
        usage = {"output_tokens": tokens}
        return "message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": usage}

    stream, chunks = run([start({"input_tokens": 5, "output_tokens": 1}), stop(7), stop(9)])
    assert [f for _, f in deltas(chunks) if f is not None] == ["stop"]
    assert stream.usage["output_tokens"] == 9  # the later one still counts


def test_the_stream_and_the_whole_response_agree() -> None:
    content: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": "ab", "signature": "s"},
        {"type": "text", "text": "one two"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"k": [1, "v"]}},
    ]
    events = [start()]
    for index, block in enumerate(content):
        if block["type"] == "tool_use":
            events.append(block_start(index, {**block, "input": {}}))
            arguments = json.dumps(block["input"], separators=(",", ":"))
            events += [
                delta(index, {"type": "input_json_delta", "partial_json": arguments[:3]}),
                delta(index, {"type": "input_json_delta", "partial_json": arguments[3:]}),
            ]
        else:
            kind = block["type"]
            events.append(block_start(index, {"type": kind, kind: ""}))
            value = block[kind]
            events += [
                delta(index, {"type": f"{kind}_delta", kind: part})
                for part in (value[:2], value[2:])
            ]
        events.append(stop(index))
    events.append(message_delta("tool_use", 25))
    _, chunks = run(events)
    assembled: dict[str, Any] = {"content": "", "reasoning_content": "", "tool_calls": {}}
    for d, _ in deltas(chunks):
        assembled["content"] += d.get("content", "")
        assembled["reasoning_content"] += d.get("reasoning_content", "")
        for call in d.get("tool_calls", []):
            slot = assembled["tool_calls"].setdefault(call["index"], {"arguments": ""})
            slot.update({k: v for k, v in call.items() if k in ("id", "type")})
            slot["name"] = call["function"].get("name", slot.get("name"))
            slot["arguments"] += call["function"]["arguments"]
    whole = anthropic_to_openai_response(message(content, "tool_use"), created=1)["choices"][0]
    assert assembled["content"] == whole["message"]["content"]
    assert assembled["reasoning_content"] == whole["message"]["reasoning_content"]
    [call] = whole["message"]["tool_calls"]
    assert assembled["tool_calls"] == {
        0: {"id": call["id"], "type": "function", **call["function"]}
    }
