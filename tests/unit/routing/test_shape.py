"""What a reply did, read from the frames or the body the client gets."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from coderouterd.routing.shape import ReplyShape, offers_tools
from tests.fakes.transcripts import (
    anthropic_message,
    anthropic_text_stream,
    openai_completion,
    openai_text_stream,
)
from tests.fakes.upstream import sse_frame

TOOL_START = (
    "content_block_start",
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "t", "name": "Read", "input": {}},
    },
)


def anthropic_frames(
    events: list[tuple[str, dict[str, Any]]], *, spaced: bool = False
) -> list[bytes]:
    dump = json.dumps if spaced else (lambda v: json.dumps(v, separators=(",", ":")))
    return [sse_frame("anthropic", name, dump(data).encode()) for name, data in events]


def openai_frames(events: list[tuple[str, dict[str, Any]]], *, spaced: bool = False) -> list[bytes]:
    dump = json.dumps if spaced else (lambda v: json.dumps(v, separators=(",", ":")))
    return [sse_frame("openai", "", dump(data).encode()) for _, data in events]


@pytest.mark.parametrize("spaced", [False, True])
def test_an_anthropic_stream_with_a_tool_call(spaced: bool) -> None:
    events = anthropic_text_stream(["Reading."], stop_reason="tool_use")
    events.insert(-2, TOOL_START)
    shape = ReplyShape("anthropic")
    shape.frames(anthropic_frames(events, spaced=spaced))
    assert (shape.stop_reason, shape.tool_use) == ("tool_use", True)


def test_an_anthropic_stream_of_text_that_talks_about_events() -> None:
    shape = ReplyShape("anthropic")
    shape.frames(
        anthropic_frames(anthropic_text_stream(['"message_delta" and content_block_start']))
    )
    assert (shape.stop_reason, shape.tool_use) == ("end_turn", False)


@pytest.mark.parametrize("spaced", [False, True])
def test_an_openai_stream_with_a_tool_call(spaced: bool) -> None:
    events = openai_text_stream([], finish_reason="tool_calls")
    call = {
        "index": 0,
        "id": "c",
        "type": "function",
        "function": {"name": "Read", "arguments": ""},
    }
    events.insert(
        1,
        (
            "",
            {
                **events[1][1],
                "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}],
            },
        ),
    )
    shape = ReplyShape("openai")
    shape.frames(openai_frames(events, spaced=spaced))
    assert (shape.stop_reason, shape.tool_use) == ("tool_use", True)


def test_an_openai_stream_of_text_stops_with_end_turn() -> None:
    shape = ReplyShape("openai")
    shape.frames(openai_frames(openai_text_stream(["hi"], finish_reason="length")))
    assert (shape.stop_reason, shape.tool_use) == ("max_tokens", False)


def test_whole_replies() -> None:
    message = anthropic_message("")
    message["content"] = [TOOL_START[1]["content_block"]]
    message["stop_reason"] = "tool_use"
    anthropic = ReplyShape("anthropic")
    anthropic.body(json.dumps(message).encode())
    assert (anthropic.stop_reason, anthropic.tool_use) == ("tool_use", True)
    openai = ReplyShape("openai")
    openai.body(json.dumps(openai_completion("hi")).encode())
    assert (openai.stop_reason, openai.tool_use) == ("end_turn", False)
    error = ReplyShape("anthropic")
    error.body(b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}')
    assert (error.stop_reason, error.tool_use) == (None, False)
    broken = ReplyShape("openai")
    broken.body(b"not json")
    assert (broken.stop_reason, broken.tool_use) == (None, False)


@pytest.mark.parametrize(
    ("tools", "offered"),
    [(None, False), (b"[]", False), (b"[ ]", False), (b"null", False), (b'[{"name":"R"}]', True)],
)
def test_offers_tools(tools: bytes | None, offered: bool) -> None:
    fields = {} if tools is None else {"tools": msgspec.Raw(tools)}
    assert offers_tools(fields) is offered
