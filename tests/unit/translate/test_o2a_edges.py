"""OpenAI requests at the edges of what the Anthropic translation took:
a system message alone, loosely labelled images, images in tool results,
and the legacy `functions` form, asked and answered."""

from __future__ import annotations

import base64
import re
from typing import Any

import msgspec
import pytest

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.params_o2a import legacy_functions
from coderouterd.translate.request_o2a import CONTINUE_PLACEHOLDER, openai_to_anthropic_request
from coderouterd.translate.response_a2o import (
    AnthropicToOpenAIStream,
    anthropic_to_openai_response,
    as_function_call,
)
from coderouterd.translate.types import Degradation

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10"
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
USER_HI = {"role": "user", "content": "hi"}


def translate(body: dict[str, Any]) -> tuple[dict[str, Any], list[Degradation]]:
    return openai_to_anthropic_request(
        {"model": "gpt-4o", **body}, model="claude-sonnet-4-5", max_output_tokens=None
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# A request of system messages alone.


@pytest.mark.parametrize("role", ["system", "developer"])
def test_a_system_message_alone_gets_the_placeholder_user_turn(role: str) -> None:
    out, degradations = translate({"messages": [{"role": role, "content": "Write a haiku."}]})
    assert out["system"] == "Write a haiku."
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": CONTINUE_PLACEHOLDER}]}
    ]
    assert [d.field for d in degradations] == ["messages"]


def test_a_request_without_any_message_is_still_refused() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translate({"messages": []})
    assert caught.value.field == "messages"


# Inline images: the media type the bytes are.


@pytest.mark.parametrize(
    ("label", "data", "media_type"),
    [
        ("image/jpg", b64(JPEG), "image/jpeg"),
        ("image/jpeg", b64(PNG), "image/png"),
        ("image/png", b64(GIF), "image/gif"),
        ("image/png", b64(WEBP), "image/webp"),
        ("image/jpg", "\n".join(b64(JPEG)[i : i + 4] for i in range(0, 28, 4)), "image/jpeg"),
        ("image/JPG", b64(b"not an image at all"), "image/jpeg"),
        ("image/pjpeg", b64(b"not an image at all"), "image/jpeg"),
        ("image/bmp", b64(b"BM not one Claude reads"), "image/bmp"),
        ("image/jpg", "%%% not base64 %%%", "image/jpeg"),
        ("image/jpg", "bäd", "image/jpeg"),
    ],
)
def test_an_inline_image_has_the_media_type_of_its_bytes(
    label: str, data: str, media_type: str
) -> None:
    part = {"type": "image_url", "image_url": {"url": f"data:{label};base64,{data}"}}
    out, _ = translate({"messages": [{"role": "user", "content": [part]}]})
    [image] = out["messages"][0]["content"]
    assert image == {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


# Tool results with images.

CALL = {"id": "call_1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}
CALLED = [USER_HI, {"role": "assistant", "content": None, "tool_calls": [CALL]}]


def tool_result(content: Any) -> dict[str, Any]:
    out, _ = translate(
        {"messages": [*CALLED, {"role": "tool", "tool_call_id": "call_1", "content": content}]}
    )
    [block] = out["messages"][2]["content"]
    assert block["type"] == "tool_result"
    return block


def test_a_tool_results_image_parts_go_inside_it_with_its_text() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "  "},
        {"type": "text", "text": "the page"},
    ]
    assert tool_result(parts)["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "text", "text": "the page"},
    ]


def test_a_tool_results_image_keeps_its_cache_marker() -> None:
    marker = {"type": "ephemeral"}
    url = f"data:image/jpg;base64,{b64(JPEG)}"
    parts = [{"type": "image_url", "image_url": {"url": url}, "cache_control": marker}]
    [image] = tool_result(parts)["content"]
    assert image["cache_control"] == marker
    assert image["source"]["media_type"] == "image/jpeg"


def test_a_tool_results_bad_image_is_refused_naming_it() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "ftp://x"}}]
    with pytest.raises(InvalidRequestError) as caught:
        tool_result(parts)
    assert caught.value.field == "messages[2].content[0].image_url.url"


# The legacy functions form, asked.

WEATHER = {"name": "weather", "parameters": {"type": "object"}}


def legacy_call(name: str, arguments: str = "{}") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "function_call": {"name": name, "arguments": arguments},
    }


def legacy_result(name: str, content: Any) -> dict[str, Any]:
    return {"role": "function", "name": name, "content": content}


def test_tools_and_functions_sent_together_are_all_offered() -> None:
    tools = [{"type": "function", "function": {"name": "search"}}]
    out, _ = translate({"messages": [USER_HI], "tools": tools, "functions": [WEATHER]})
    assert [t["name"] for t in out["tools"]] == ["search", "weather"]
    assert "tool_choice" not in out  # answered as tool_calls: parallel calls stay allowed


def test_tool_choice_wins_over_function_call() -> None:
    body = {"messages": [USER_HI], "functions": [WEATHER], "tool_choice": "required"}
    out, _ = translate({**body, "function_call": "none"})
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_legacy_calls_and_results_pair_by_one_made_id() -> None:
    messages = [
        USER_HI,
        legacy_call("weather", '{"city": "Paris"}'),
        legacy_result("weather", [{"type": "text", "text": "sunny"}]),
    ]
    out, degradations = translate({"messages": messages, "functions": [WEATHER]})
    [use] = out["messages"][1]["content"]
    [result] = out["messages"][2]["content"]
    assert TOOL_ID.match(use["id"])
    assert use == {
        "type": "tool_use",
        "id": use["id"],
        "name": "weather",
        "input": {"city": "Paris"},
    }
    assert result == {
        "type": "tool_result",
        "tool_use_id": use["id"],
        "content": [{"type": "text", "text": "sunny"}],
    }
    assert degradations == []


def test_a_legacy_result_answers_the_latest_unanswered_call_of_its_name() -> None:
    # One assistant turn holding a tool call and a legacy call: each result
    # goes with the call of its own kind, and the legacy call with its name.
    assistant = {**legacy_call("weather"), "tool_calls": [CALL]}
    messages = [
        USER_HI,
        assistant,
        {"role": "tool", "tool_call_id": "call_1", "content": "shot"},
        legacy_result("weather", "sunny"),
    ]
    out, degradations = translate({"messages": messages})
    uses = {b["name"]: b["id"] for b in out["messages"][1]["content"]}
    results = {b["content"]: b["tool_use_id"] for b in out["messages"][2]["content"]}
    assert results == {"shot": uses["shot"], "sunny": uses["weather"]}
    assert uses["weather"] != uses["shot"]
    assert degradations == []


def test_of_two_unanswered_calls_of_one_name_a_result_answers_the_latest() -> None:
    # Legacy messages carry no id to tell; consecutive assistant messages
    # are one turn, so both calls are answered in the next.
    messages = [
        USER_HI,
        legacy_call("weather", '{"city": "Paris"}'),
        legacy_call("weather", '{"city": "Rome"}'),
        legacy_result("weather", "rainy"),
        legacy_result("weather", "sunny"),
    ]
    out, degradations = translate({"messages": messages})
    uses = {b["input"]["city"]: b["id"] for b in out["messages"][1]["content"]}
    results = {b["content"]: b["tool_use_id"] for b in out["messages"][2]["content"]}
    assert results == {"rainy": uses["Rome"], "sunny": uses["Paris"]}
    assert len(set(uses.values())) == 2
    assert degradations == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [USER_HI, legacy_call("")]}, "messages[1].function_call.name"),
        (
            {"messages": [USER_HI, {"role": "assistant", "function_call": "x"}]},
            "messages[1].function_call",
        ),
        ({"messages": [USER_HI, {"role": "function", "content": "x"}]}, "messages[1].name"),
        ({"messages": [USER_HI], "functions": WEATHER}, "functions"),
        ({"messages": [USER_HI], "functions": [{"parameters": {}}]}, "functions[0].name"),
        (
            {"messages": [USER_HI], "functions": [WEATHER], "function_call": "always"},
            "function_call",
        ),
        (
            {"messages": [USER_HI], "functions": [WEATHER], "function_call": {"name": ""}},
            "function_call",
        ),
    ],
)
def test_a_malformed_legacy_request_is_refused_naming_the_field(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translate(body)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("fields", "legacy"),
    [
        ({"functions": [WEATHER]}, True),
        ({"functions": msgspec.Raw(msgspec.json.encode([WEATHER]))}, True),
        ({"functions": [WEATHER], "tools": [{"type": "function", "function": WEATHER}]}, False),
        ({"functions": msgspec.Raw(b"[]")}, False),
        ({"functions": msgspec.Raw(b"null")}, False),
        ({"functions": msgspec.Raw(b"[oops")}, False),
        ({"tools": [{"type": "function", "function": WEATHER}]}, False),
        ({}, False),
    ],
)
def test_legacy_functions_tells_a_client_of_the_legacy_form(
    fields: dict[str, Any], legacy: bool
) -> None:
    assert legacy_functions(fields) is legacy


# The legacy functions form, answered.

TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}


def test_a_whole_answer_carries_its_call_as_function_call() -> None:
    message = {
        "id": "msg_1",
        "model": "claude",
        "content": [{"type": "text", "text": "Looking."}, TOOL_USE, {**TOOL_USE, "id": "toolu_2"}],
        "stop_reason": "tool_use",
    }
    [choice] = as_function_call(anthropic_to_openai_response(message, created=1))["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Looking.",
        "function_call": {"name": "weather", "arguments": '{"city":"Paris"}'},
    }
    assert choice["finish_reason"] == "function_call"


def test_an_answer_without_a_call_is_left_as_it_is() -> None:
    message = {"id": "m", "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}
    completion = anthropic_to_openai_response(message, created=1)
    assert as_function_call(completion) == completion


def test_a_streamed_call_comes_as_function_call_deltas() -> None:
    stream = AnthropicToOpenAIStream(completion_id="c", model="m", created=1)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": {"usage": {"input_tokens": 3}}}),
        ("content_block_start", {"index": 0, "content_block": {**TOOL_USE, "input": {}}}),
        (
            "content_block_delta",
            {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"city"'}},
        ),
        (
            "content_block_delta",
            {"index": 0, "delta": {"type": "input_json_delta", "partial_json": ': "P"}'}},
        ),
        ("content_block_stop", {"index": 0}),
        ("content_block_start", {"index": 1, "content_block": {**TOOL_USE, "id": "toolu_2"}}),
        ("content_block_stop", {"index": 1}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}),
    ]
    chunks = [as_function_call(c) for name, data in events for c in stream.feed(name, data)]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert [d.get("function_call") for d in deltas if "function_call" in d] == [
        {"name": "weather", "arguments": ""},
        {"arguments": '{"city"'},
        {"arguments": ': "P"}'},
    ]
    assert not any("tool_calls" in d for d in deltas)
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "function_call"
    assert as_function_call(stream.finish(include_usage=True)[0])["choices"] == []
