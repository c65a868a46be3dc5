"""A whole chat.completion becomes an Anthropic message, with the stream's rules."""

from __future__ import annotations

from typing import Any

import pytest

from coderouterd.translate.response_o2a import (
    ToolIds,
    anthropic_usage,
    openai_to_anthropic_response,
    parse_arguments,
    stop_of,
    stop_reason_of,
)
from coderouterd.translate.stream_o2a import OpenAIToAnthropicStream
from coderouterd.translate.types import NO_TOOLS, OutputFilters, ThinkMode, ToolNames

from .test_stream_o2a import assemble, check_sequence

ALL_ON = OutputFilters(think="thinking", strip_tool_markup=True, repair_tool_calls=True)
NAMES = ToolNames(frozenset({"Read", "Bash"}))


def completion(
    message: dict[str, Any], finish: str | None = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    resp: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1746000000,
        "model": "qwen3-8b",
        "system_fingerprint": "b5460-0b6f6bec",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
    }
    if usage is not None:
        resp["usage"] = usage
    return resp


def convert(
    resp: dict[str, Any],
    filters: OutputFilters = ALL_ON,
    names: ToolNames = NAMES,
    stop_sequences: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], int, bool]:
    return openai_to_anthropic_response(
        resp,
        message_id="msg_abc",
        model="claude-sonnet-4-5",
        filters=filters,
        names=names,
        estimated_input_tokens=500,
        stop_sequences=stop_sequences,
    )


USAGE = {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129}


def test_plain_text_gives_a_complete_message() -> None:
    message, repairs, estimated = convert(completion({"content": "Hello!"}, usage=USAGE))
    assert message == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 120,
            "output_tokens": 9,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    assert (repairs, estimated) == (0, False)


def test_cached_prompt_tokens_are_split_out_of_input_tokens() -> None:
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 100}}
    message, _, _ = convert(completion({"content": "x"}, usage=usage))
    assert message["usage"]["input_tokens"] == 20
    assert message["usage"]["cache_read_input_tokens"] == 100


def test_missing_usage_is_estimated_and_marked() -> None:
    message, _, estimated = convert(completion({"content": "y" * 10, "reasoning_content": "z" * 7}))
    assert message["usage"] == {
        "input_tokens": 500,
        "output_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert estimated


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_becomes_a_leading_unsigned_thinking_block(key: str) -> None:
    message, _, _ = convert(completion({key: "Let me think.", "content": "\n\nAnswer."}))
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": ""},
        {"type": "text", "text": "Answer."},
    ]


@pytest.mark.parametrize(
    ("think", "expected"),
    [
        (
            "thinking",
            [
                {"type": "thinking", "thinking": "plan", "signature": ""},
                {"type": "text", "text": "Answer."},
            ],
        ),
        ("strip", [{"type": "text", "text": "Answer."}]),
        ("off", [{"type": "text", "text": "<think>plan</think>\n\nAnswer."}]),
    ],
)
def test_think_tags_follow_the_filter_mode(
    think: ThinkMode, expected: list[dict[str, Any]]
) -> None:
    filters = OutputFilters(think=think)
    message, _, _ = convert(completion({"content": "<think>plan</think>\n\nAnswer."}), filters)
    assert message["content"] == expected


def test_tool_calls_become_tool_use_blocks() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "Read", "arguments": '{"file_path":"/a"}'},
        },
        {"id": "call 2!", "type": "function", "function": {"name": "Bash", "arguments": ""}},
        {"type": "function", "function": {"name": "Bash", "arguments": {"command": "ls"}}},
        {"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{oops"}},
    ]
    message, _, _ = convert(completion({"content": None, "tool_calls": calls}, "tool_calls"))
    # Every id is the message's own: the upstream's may repeat an earlier answer's.
    assert message["content"] == [
        {"type": "tool_use", "id": "toolu_abc_1", "name": "Read", "input": {"file_path": "/a"}},
        {"type": "tool_use", "id": "toolu_abc_2", "name": "Bash", "input": {}},
        {"type": "tool_use", "id": "toolu_abc_3", "name": "Bash", "input": {"command": "ls"}},
        {"type": "tool_use", "id": "toolu_abc_4", "name": "Read", "input": {"_raw": "{oops"}},
    ]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("", {}),
        ("   ", {}),
        (None, {}),
        ({"a": 1}, {"a": 1}),
        ("[1, 2]", {"_raw": "[1, 2]"}),
        ('{"a": ', {"_raw": '{"a": '}),
    ],
)
def test_parse_arguments(raw: object, expected: dict[str, Any]) -> None:
    assert parse_arguments(raw) == expected


def test_legacy_function_call_becomes_a_tool_use() -> None:
    msg = {"content": None, "function_call": {"name": "Read", "arguments": '{"file_path":"/a"}'}}
    message, _, _ = convert(completion(msg, "function_call"))
    assert message["content"] == [
        {"type": "tool_use", "id": "toolu_abc_1", "name": "Read", "input": {"file_path": "/a"}}
    ]
    assert message["stop_reason"] == "tool_use"


def test_tool_call_printed_as_text_is_lifted_and_stop_reason_is_tool_use() -> None:
    text = (
        "I will read it.\n<tool_call>\n"
        '{"name": "Read", "arguments": {"file_path": "/a"}}\n</tool_call>'
    )
    message, repairs, _ = convert(completion({"content": text}, "stop"))
    assert message["content"] == [
        {"type": "text", "text": "I will read it."},
        {"type": "tool_use", "id": "toolu_abc_1", "name": "Read", "input": {"file_path": "/a"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert repairs == 1


def test_without_repair_the_markup_is_stripped_or_kept_as_asked() -> None:
    text = 'ok <tool_call>{"name": "Read", "arguments": {}}</tool_call> done'
    stripped, repairs, _ = convert(
        completion({"content": text}), OutputFilters(strip_tool_markup=True)
    )
    # Read is offered: only the tags go, the call stays as text.
    call = '{"name": "Read", "arguments": {}}'
    assert stripped["content"] == [{"type": "text", "text": f"ok {call} done"}]
    assert stripped["stop_reason"] == "end_turn" and repairs == 0
    kept, _, _ = convert(completion({"content": text}), OutputFilters())
    assert kept["content"] == [{"type": "text", "text": text}]


def test_repair_needs_offered_tools() -> None:
    text = '<tool_call>{"name": "Read", "arguments": {}}</tool_call>'
    message, repairs, _ = convert(completion({"content": text}), ALL_ON, NO_TOOLS)
    assert message["content"] == [] and repairs == 0  # no tools: the markup is stripped


def test_whitespace_only_and_empty_content_give_no_text_block() -> None:
    for content in ("", "  \n", None, []):
        message, _, _ = convert(completion({"content": content}))
        assert message["content"] == []


def test_content_given_as_parts_is_joined() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]
    message, _, _ = convert(completion({"content": parts}))
    assert message["content"] == [{"type": "text", "text": "ab"}]


def test_no_choices_gives_an_empty_message() -> None:
    message, _, estimated = convert({"id": "x", "choices": [], "usage": USAGE})
    assert message["content"] == [] and message["stop_reason"] == "end_turn"
    assert not estimated


def test_choice_index_zero_is_used() -> None:
    resp = completion({"content": "zero"})
    resp["choices"].insert(
        0, {"index": 1, "message": {"content": "one"}, "finish_reason": "length"}
    )
    message, _, _ = convert(resp)
    assert message["content"] == [{"type": "text", "text": "zero"}]
    assert message["stop_reason"] == "end_turn"


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        # A tool_calls finish without any call is a turn that ended: a
        # tool_use stop with no tool_use block is a message Anthropic never sends.
        ("tool_calls", "end_turn"),
        ("function_call", "end_turn"),
        ("content_filter", "refusal"),
        ("eos", "end_turn"),
        (None, "end_turn"),
        (3, "end_turn"),
    ],
)
def test_stop_reason_of(finish: object, stop: str) -> None:
    assert stop_reason_of(finish, tool_used=False) == stop
    # A call in an answer cut at max_tokens or by a content filter is no call to run: the cut wins.
    with_tool = stop if finish in ("length", "content_filter") else "tool_use"
    assert stop_reason_of(finish, tool_used=True) == with_tool


@pytest.mark.parametrize(
    ("finish", "matched", "tool_used", "expected"),
    [
        ("stop", "</answer>", False, ("stop_sequence", "</answer>")),
        # A string the request did not ask to stop at, a token id, nothing said.
        ("stop", "<|im_end|>", False, ("end_turn", None)),
        ("stop", 151645, False, ("end_turn", None)),
        ("stop", None, False, ("end_turn", None)),
        ("length", "</answer>", False, ("max_tokens", None)),
        ("stop", "</answer>", True, ("tool_use", None)),
    ],
)
def test_stop_of_names_the_stop_sequence_the_server_matched(
    finish: str, matched: object, tool_used: bool, expected: tuple[str, str | None]
) -> None:
    assert (
        stop_of(finish, matched, tool_used=tool_used, stop_sequences=frozenset({"</answer>"}))
        == expected
    )


@pytest.mark.parametrize("key", ["stop_reason", "matched_stop"])
def test_a_stop_sequence_vllm_or_sglang_names_is_stop_reason_stop_sequence(key: str) -> None:
    body = completion({"content": "<answer>42"}, "stop")
    body["choices"][0][key] = "</answer>"
    message, _, _ = convert(body, stop_sequences=frozenset({"</answer>"}))
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "</answer>")


def test_a_call_cut_at_max_tokens_is_stop_reason_max_tokens() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "Read", "arguments": '{"fi'}}
    message, _, _ = convert(completion({"content": None, "tool_calls": [call]}, "length"))
    assert message["stop_reason"] == "max_tokens"
    assert message["content"][0]["input"] == {"_raw": '{"fi'}


def test_usage_without_completion_tokens_is_partly_estimated() -> None:
    usage, estimated = anthropic_usage(
        {"prompt_tokens": 10}, estimated_input_tokens=99, output_chars=8
    )
    assert usage["input_tokens"] == 10 and usage["output_tokens"] == 2 and estimated


def test_tool_ids_are_the_message_id_numbered() -> None:
    ids = ToolIds("msg_req:01X")
    assert [ids.assign(), ids.assign(), ids.assign()] == [
        "toolu_req_01X_1",
        "toolu_req_01X_2",
        "toolu_req_01X_3",
    ]


SAME_AS_STREAM = [
    "Hello there.",
    "<think>\nplan\n</think>\n\nThe answer.",
    'Reading.\n<tool_call>{"name": "Read", "arguments": {"file_path": "/a"}}</tool_call>\n'
    "Then more.",
    '```json\n{"name": "Bash", "arguments": {"command": "ls"}}\n```',
    "  \n<think></think>\n  indented start",
    "Text <think>mid</think> and <tool_call>junk</tool_call> end",
]


@pytest.mark.parametrize("content", SAME_AS_STREAM)
def test_non_streaming_and_streaming_give_the_same_content(content: str) -> None:
    reasoning = "prior reasoning"
    message, repairs, _ = convert(completion({"content": content, "reasoning_content": reasoning}))
    stream = OpenAIToAnthropicStream(
        message_id="msg_abc",
        model="m",
        filters=ALL_ON,
        names=NAMES,
        estimated_input_tokens=500,
    )
    events = stream.feed({"choices": [{"index": 0, "delta": {"reasoning_content": reasoning}}]})
    for ch in content:
        events += stream.feed({"choices": [{"index": 0, "delta": {"content": ch}}]})
    events += stream.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events += stream.finish()
    check_sequence(events)
    streamed = assemble(events)
    assert streamed["content"] == message["content"]
    assert streamed["stop_reason"] == message["stop_reason"]
    assert stream.repairs == repairs
