"""Output filters in the client's own dialect (Anthropic events, OpenAI chunks)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coderouterd.translate.filtered_anthropic import (
    FilteredAnthropicStream,
    FilteredAnthropicTranscoder,
    filter_anthropic_message,
)
from coderouterd.translate.filtered_openai import (
    FilteredOpenAIStream,
    FilteredOpenAITranscoder,
    filter_openai_completion,
)
from coderouterd.translate.openai_passthrough import OpenAIPassthrough
from coderouterd.translate.types import OutputFilters, ToolNames
from coderouterd.wire.sse import SSEDecoder
from tests.unit.translate.test_stream_o2a import assemble, check_sequence

ON = OutputFilters(think="thinking", strip_tool_markup=True, repair_tool_calls=True)
TOOLS = ToolNames(frozenset({"Read", "Bash"}))
CALL = '<tool_call>{"name": "Read", "arguments": {"file_path": "/a"}}</tool_call>'
USAGE = {
    "input_tokens": 7,
    "output_tokens": 0,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


# Anthropic


def anthropic_bytes(texts: list[str], extra: list[tuple[str, dict[str, Any]]]) -> bytes:
    message = {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": USAGE,
    }
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": message})]
    events.append(
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    )
    events += [
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": t}})
        for t in texts
    ]
    events.append(("content_block_stop", {"index": 0}))
    events += extra
    usage = {**USAGE, "output_tokens": 9}
    delta = {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": usage}
    events += [("message_delta", delta), ("message_stop", {})]
    return b"".join(
        b"event: " + n.encode() + b"\ndata: " + msgspec.json.encode({"type": n, **d}) + b"\n\n"
        for n, d in events
    )


def through_anthropic(raw: bytes, cuts: list[int]) -> tuple[dict[str, Any], int]:
    transcoder = FilteredAnthropicTranscoder("p", FilteredAnthropicStream(ON, TOOLS, "msg_r"))
    out = b""
    start = 0
    for cut in [*sorted(set(cuts)), len(raw)]:
        out += b"".join(o.raw for o in transcoder.feed(raw[start:cut]))
        start = cut
    assert transcoder.end() == [] and transcoder.finished
    decoder = SSEDecoder()
    events = [(e.event, json.loads(e.data)) for e in decoder.feed(out)]
    check_sequence(events)
    return assemble(events), transcoder.repairs


TOOL_BLOCK = [
    (
        "content_block_start",
        {
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}},
        },
    ),
    (
        "content_block_delta",
        {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"command":"ls"}'}},
    ),
    ("content_block_stop", {"index": 1}),
]
TEXTS = ["<think>first ", "plan</think>\n\nLooking.\n", CALL, "\n"]
EXPECTED = {
    "content": [
        {"type": "thinking", "thinking": "first plan", "signature": ""},
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "toolu_r_1", "name": "Read", "input": {"file_path": "/a"}},
        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}},
    ],
    "stop_reason": "tool_use",
    "usage": {**USAGE, "output_tokens": 9},
}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_an_anthropic_stream_split_anywhere_is_filtered_to_the_same_message(
    data: st.DataObject,
) -> None:
    raw = anthropic_bytes(TEXTS, TOOL_BLOCK)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    assert through_anthropic(raw, cuts) == (EXPECTED, 1)


def test_an_anthropic_message_is_filtered_like_the_stream() -> None:
    tool = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}
    message = {
        "id": "msg_r",
        "content": [{"type": "text", "text": "".join(TEXTS)}, tool],
        "stop_reason": "end_turn",
    }
    out, repairs = filter_anthropic_message(message, filters=ON, names=TOOLS)
    assert out["content"] == EXPECTED["content"]
    assert out["stop_reason"] == "tool_use" and repairs == 1


def test_an_unchanged_text_block_keeps_its_other_fields() -> None:
    block = {"type": "text", "text": "plain", "citations": [{"type": "x"}]}
    out, repairs = filter_anthropic_message(
        {"id": "m", "content": [block], "stop_reason": "end_turn"}, filters=ON, names=TOOLS
    )
    assert out["content"] == [block] and out["stop_reason"] == "end_turn" and repairs == 0


def test_a_changed_text_block_gives_its_citations_to_its_text() -> None:
    citations = [{"type": "char_location", "cited_text": "x"}]
    block = {"type": "text", "text": "Reading.\n" + CALL, "citations": citations}
    out, repairs = filter_anthropic_message(
        {"id": "m", "content": [block], "stop_reason": "end_turn"}, filters=ON, names=TOOLS
    )
    assert [b["type"] for b in out["content"]] == ["text", "tool_use"] and repairs == 1
    assert out["content"][0] == {"type": "text", "text": "Reading.", "citations": citations}
    # Text that all became a call keeps no citation: there is no text to cite.
    block = {"type": "text", "text": CALL, "citations": citations}
    out, _ = filter_anthropic_message(
        {"id": "m", "content": [block], "stop_reason": "end_turn"}, filters=ON, names=TOOLS
    )
    assert [b["type"] for b in out["content"]] == ["tool_use"]


# OpenAI


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def through_openai(chunks: list[dict[str, Any]], *, done: bool = True) -> list[dict[str, Any]]:
    transcoder = FilteredOpenAITranscoder(
        OpenAIPassthrough("p", forward_usage=True), FilteredOpenAIStream(ON, TOOLS)
    )
    raw = b"".join(b"data: " + msgspec.json.encode(c) + b"\n\n" for c in chunks)
    outs = transcoder.feed(raw + (b"data: [DONE]\n\n" if done else b"")) + transcoder.end()
    assert transcoder.finished
    decoded = [e.data for e in SSEDecoder().feed(b"".join(o.raw for o in outs))]
    assert decoded[-1] == b"[DONE]"
    return [json.loads(d) for d in decoded[:-1]]


def assembled(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    content, reasoning, finish = "", "", None
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        choice = c["choices"][0]
        delta = choice["delta"]
        content += delta.get("content") or ""
        reasoning += delta.get("reasoning_content") or ""
        for call in delta.get("tool_calls") or []:
            slot = calls.setdefault(call["index"], {"name": "", "arguments": ""})
            slot["name"] += call.get("function", {}).get("name") or ""
            slot["arguments"] += call.get("function", {}).get("arguments") or ""
        finish = choice["finish_reason"] or finish
    return {"content": content, "reasoning": reasoning, "calls": calls, "finish": finish}


# A proper tool call the upstream sends itself, beside one written as text.
UPSTREAM_CALL = {
    "index": 0,
    "id": "u1",
    "type": "function",
    "function": {"name": "Bash", "arguments": "{}"},
}


def test_a_lifted_call_never_shares_an_index_with_the_upstreams_own_calls() -> None:
    out = through_openai(
        [chunk({"content": CALL}), chunk({"tool_calls": [UPSTREAM_CALL]}), chunk({}, "stop")]
    )
    got = assembled(out)
    assert got["calls"] == {
        0: {"name": "Read", "arguments": '{"file_path":"/a"}'},
        1: {"name": "Bash", "arguments": "{}"},
    }
    assert got["finish"] == "tool_calls"


def test_text_held_back_comes_out_before_the_upstreams_tool_calls_and_finish() -> None:
    out = through_openai(
        [
            chunk({"content": "Checking:\nRea"}),
            chunk({"tool_calls": [UPSTREAM_CALL]}),
            chunk({}, "tool_calls"),
        ]
    )
    contents = [c["choices"][0]["delta"].get("content") for c in out]
    first_call = next(i for i, c in enumerate(out) if c["choices"][0]["delta"].get("tool_calls"))
    assert "".join(x or "" for x in contents[:first_call]) == "Checking:\nRea"
    assert out[first_call]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0


def test_text_held_at_done_without_a_finish_reason_is_released() -> None:
    got = assembled(through_openai([chunk({"content": "ends here\nRea"})]))
    assert got["content"] == "ends here\nRea"


def test_chunks_the_filters_leave_alone_are_forwarded_as_they_came() -> None:
    stream = FilteredOpenAIStream(ON, TOOLS)
    assert stream.feed(chunk({"role": "assistant", "content": ""})) == [None]
    assert stream.feed(chunk({"content": "plain words."})) == [None]
    assert stream.feed({"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}) == [None]


def test_reasoning_and_think_text_both_become_reasoning_content_in_order() -> None:
    out = through_openai(
        [
            chunk({"reasoning_content": "r1"}),
            chunk({"content": "<think>r2</think>answer"}),
            chunk({}, "stop"),
        ]
    )
    got = assembled(out)
    assert (got["reasoning"], got["content"], got["finish"]) == ("r1r2", "answer", "stop")


def test_a_whole_completion_without_markup_is_left_as_it_came() -> None:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}}]}
    assert filter_openai_completion(body, filters=ON, names=TOOLS) is None
