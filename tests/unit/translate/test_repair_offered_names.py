"""Markup stripping keeps the text of a `<tool_call>` block calling a tool
the request offered, callable now or not (under tool_choice none, or a
forced other tool, no name may be lifted); only a block calling tools the
request did not offer at all goes whole. Every entry point of the filters
takes the offered names with the names a call may be lifted as (ToolNames)."""

from __future__ import annotations

from typing import Any

from coderouterd.translate.filtered_anthropic import (
    FilteredAnthropicStream,
    filter_anthropic_message,
)
from coderouterd.translate.filtered_openai import FilteredOpenAIStream, filter_openai_completion
from coderouterd.translate.repair import ToolCallRepair
from coderouterd.translate.response_o2a import OutputPipeline, openai_to_anthropic_response
from coderouterd.translate.stream_o2a import OpenAIToAnthropicStream
from coderouterd.translate.types import OutputFilters, ToolNames

ON = OutputFilters(think="thinking", strip_tool_markup=True, repair_tool_calls=True)
NONE_CALLABLE: frozenset[str] = frozenset()
OFFERED = frozenset({"Read"})
NAMES = ToolNames(NONE_CALLABLE, OFFERED)
CALL = '{"name": "Read", "arguments": {"file_path": "/a.py"}}'
TEXT = f"Reading.\n<tool_call>{CALL}</tool_call>"
KEPT = f"Reading.\n{CALL}"
OTHER = '\n<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>\nDone.'


def test_the_repair_keeps_a_call_to_an_offered_tool_and_drops_one_to_a_tool_not_offered() -> None:
    repair = ToolCallRepair(NONE_CALLABLE, strip_markup=True, offered=OFFERED)
    out = repair.feed(TEXT + OTHER) + repair.flush()
    assert "".join(str(s) for s in out) == KEPT + "\nDone."
    assert repair.repairs == 0


def test_the_pipeline_keeps_a_call_to_a_tool_offered_but_not_callable() -> None:
    pipeline = OutputPipeline(ON, NAMES)
    assert pipeline.feed(TEXT) + pipeline.flush() == [("text", KEPT)]
    assert pipeline.repairs == 0


def test_every_whole_answer_path_keeps_a_call_to_a_tool_offered_but_not_callable() -> None:
    completion = {"choices": [{"index": 0, "message": {"content": TEXT}, "finish_reason": "stop"}]}
    message, _, _ = openai_to_anthropic_response(
        completion, message_id="msg_1", model="m", filters=ON, estimated_input_tokens=1, names=NAMES
    )
    assert message["content"] == [{"type": "text", "text": KEPT}]
    filtered = filter_openai_completion(completion, filters=ON, names=NAMES)
    assert filtered is not None
    assert filtered[0]["choices"][0]["message"]["content"] == KEPT
    anthropic = {"id": "msg_1", "content": [{"type": "text", "text": TEXT}]}
    out, _ = filter_anthropic_message(anthropic, filters=ON, names=NAMES)
    assert out["content"] == [{"type": "text", "text": KEPT}]


def test_every_stream_keeps_a_call_to_a_tool_offered_but_not_callable() -> None:
    o2a = OpenAIToAnthropicStream(
        message_id="msg_1",
        model="m",
        filters=ON,
        names=NAMES,
        estimated_input_tokens=1,
    )
    events = o2a.feed({"choices": [{"index": 0, "delta": {"content": TEXT}}]}) + o2a.finish()
    assert _texts(events) == KEPT
    openai = FilteredOpenAIStream(ON, NAMES)
    chunks = openai.feed({"choices": [{"index": 0, "delta": {"content": TEXT}}]})
    chunks = [*chunks, *openai.finish()]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c) == KEPT
    anthropic = FilteredAnthropicStream(ON, NAMES, "msg_1")
    events = anthropic.feed("content_block_start", {"index": 0, "content_block": {"type": "text"}})
    events = [*(events or []), *(anthropic.feed("content_block_delta", _delta(TEXT)) or [])]
    events += anthropic.feed("content_block_stop", {"index": 0}) or []
    assert _texts(events) == KEPT


def _delta(text: str) -> dict[str, Any]:
    return {"index": 0, "delta": {"type": "text_delta", "text": text}}


def _texts(events: list[tuple[str, dict[str, Any]]]) -> str:
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    return "".join(d["text"] for d in deltas if d.get("type") == "text_delta")
