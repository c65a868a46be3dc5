"""An OpenAI client's prompt-cache markers (`cache_control`, as OpenRouter and
LiteLLM take them) on the Anthropic request made from it: golden tables."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from coderouterd.translate.anthropic_request import CACHE_CONTROL_DROPPED
from coderouterd.translate.request_o2a import openai_to_anthropic_request
from coderouterd.translate.types import Degradation

EPH = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
PNG = "data:image/png;base64,iVBORw0KGgo="


def translate(body: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[Degradation]]:
    return openai_to_anthropic_request(
        {"model": "gpt-4o", **body}, model="claude-sonnet-4-5", max_output_tokens=None, **kw
    )


def text(value: str, marker: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "text", "text": value} | ({"cache_control": marker} if marker else {})


def call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "read", "arguments": "{}"}}


def markers(out: dict[str, Any]) -> int:
    return json.dumps(out).count('"cache_control"')


def test_a_marked_system_part_makes_the_system_text_blocks_with_the_marker() -> None:
    """Each part is one block, so the marker covers just what the client
    marked (not the part after it); blank parts are left out."""
    out, degradations = translate(
        {
            "messages": [
                {"role": "system", "content": [text("rules", EPH), text(" "), text("today")]},
                {"role": "developer", "content": "more"},
                {"role": "user", "content": "hi"},
            ]
        }
    )
    assert out["system"] == [text("rules", EPH), text("today"), text("more")]
    assert degradations == []


def test_only_a_marker_makes_the_system_text_blocks() -> None:
    """Without one the system stays the one string other clients get."""
    system: list[Any] = [
        {"role": "system", "content": [text("a"), text(""), text("b")]},
        {"role": "system", "content": ""},
        {"role": "developer", "content": "c"},
    ]
    plain, _ = translate({"messages": [*system, {"role": "user", "content": "hi"}]})
    assert plain["system"] == "a\n\nb\n\nc"
    assert markers(plain) == 0
    marked, _ = translate({"messages": [*system, {"role": "user", "content": [text("hi", EPH)]}]})
    assert marked["system"] == "a\n\nb\n\nc"
    assert marked["messages"][0]["content"] == [text("hi", EPH)]


def test_markers_on_user_text_and_image_parts_are_carried_with_their_ttl() -> None:
    out, degradations = translate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": PNG}, "cache_control": HOUR},
                        text("describe", EPH),
                        text("briefly"),
                    ],
                }
            ]
        }
    )
    image, marked, plain = out["messages"][0]["content"]
    assert image["type"] == "image"
    assert image["cache_control"] == HOUR
    assert marked == text("describe", EPH)
    assert plain == text("briefly")
    assert degradations == []


def test_a_message_level_marker_goes_on_the_last_block_made_from_the_message() -> None:
    """LiteLLM takes `cache_control` on a message whose content is a string
    (Roo Code sends its system prompt so to some gateways)."""
    out, degradations = translate(
        {
            "messages": [
                {"role": "system", "content": "rules", "cache_control": EPH},
                {"role": "user", "content": "read it", "cache_control": EPH},
                {"role": "assistant", "content": "ok", "tool_calls": [call("c1")]},
                {"role": "tool", "tool_call_id": "c1", "content": "text", "cache_control": HOUR},
            ]
        }
    )
    assert out["system"] == [text("rules", EPH)]
    user, assistant, results = out["messages"]
    assert user["content"] == [text("read it", EPH)]
    assert "cache_control" not in json.dumps(assistant)
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "text", "cache_control": HOUR}
    ]
    assert degradations == []


def test_markers_on_tool_message_parts_stay_inside_the_tool_result() -> None:
    out, _ = translate(
        {
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": None, "tool_calls": [call("c1"), call("c2")]},
                {"role": "tool", "tool_call_id": "c1", "content": [text("one")]},
                {"role": "tool", "tool_call_id": "c2", "content": [text("two", EPH)]},
            ]
        }
    )
    first, second = out["messages"][2]["content"]
    assert first == {"type": "tool_result", "tool_use_id": "c1", "content": [text("one")]}
    assert second == {"type": "tool_result", "tool_use_id": "c2", "content": [text("two", EPH)]}


def test_markers_on_assistant_parts_tools_and_the_request_are_carried() -> None:
    """Anthropic takes a marker on a tool and at the top level (automatic
    caching), as OpenRouter does."""
    out, degradations = translate(
        {
            "cache_control": EPH,
            "tools": [
                {"type": "function", "function": {"name": "read"}},
                {"type": "function", "function": {"name": "write"}, "cache_control": EPH},
            ],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [text("hello", EPH)]},
                {"role": "user", "content": "again"},
            ],
        }
    )
    assert out["cache_control"] == EPH
    assert [t.get("cache_control") for t in out["tools"]] == [None, EPH]
    assert out["messages"][1]["content"] == [text("hello", EPH)]
    assert markers(out) == 3
    assert degradations == []


def test_roo_codes_breakpoints_land_where_it_put_them() -> None:
    """Roo Code (for OpenRouter): the system prompt, and the last part of
    the last user or tool message and of the one before the last answer."""
    messages = [
        {"role": "system", "content": [text("You are Roo.", EPH)]},
        {"role": "user", "content": [text("task")]},
        {"role": "assistant", "content": "reading", "tool_calls": [call("c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": [text("file", EPH)]},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": [text("env"), text("next", EPH)]},
    ]
    out, degradations = translate({"messages": messages})
    assert out["system"] == [text("You are Roo.", EPH)]
    assert out["messages"][2]["content"][0]["content"] == [text("file", EPH)]
    assert out["messages"][4]["content"] == [text("env"), text("next", EPH)]
    assert markers(out) == 3
    assert degradations == []


def test_past_four_markers_the_first_in_prompt_order_are_left_out() -> None:
    """Anthropic refuses a fifth breakpoint; it reads tools, then system,
    then messages, then the top-level marker, and the last ones cache the
    longest prefix."""
    body = {
        "cache_control": EPH,
        "tools": [{"type": "function", "function": {"name": "read"}, "cache_control": EPH}],
        "messages": [
            {"role": "user", "content": [text("u1", EPH)]},
            {"role": "assistant", "content": "a1"},
            {"role": "system", "content": [text("late system", EPH)]},
            {"role": "user", "content": [text("u2", EPH)]},
            {"role": "assistant", "content": "a2"},
            {"role": "user", "content": [text("u3", EPH)]},
        ],
    }
    sent = copy.deepcopy(body)
    out, degradations = translate(sent)
    assert markers(out) == 4
    assert "cache_control" not in out["tools"][0]
    assert out["system"] == [text("late system")]
    assert [m["content"] for m in out["messages"][::2]] == [
        [text("u1", EPH)],
        [text("u2", EPH)],
        [text("u3", EPH)],
    ]
    assert out["cache_control"] == EPH
    assert [d.field for d in degradations] == ["cache_control"]
    assert "the first 2 left out" in degradations[0].reason
    assert sent == body


@pytest.mark.parametrize(
    "content",
    [
        [text("kept"), text("  ", EPH)],
        [text("kept"), {"type": "input_audio", "input_audio": {}, "cache_control": EPH}],
        [text("kept"), {"type": "text", "text": "marked", "cache_control": "yes"}],
    ],
    ids=["blank text", "a kind Anthropic has no block for", "no object"],
)
def test_a_marker_that_cannot_be_carried_is_recorded(content: list[Any]) -> None:
    out, degradations = translate({"messages": [{"role": "user", "content": content}]})
    assert markers(out) == 0
    assert "content.cache_control" in [d.field for d in degradations]


def test_a_marker_on_a_blank_system_part_is_recorded() -> None:
    out, degradations = translate(
        {
            "messages": [
                {"role": "system", "content": [text("rules", EPH), text("", EPH)]},
                {"role": "user", "content": "hi"},
            ]
        }
    )
    assert out["system"] == [text("rules", EPH)]
    assert [d.field for d in degradations] == ["content.cache_control"]


def test_a_backend_that_takes_no_markers_gets_none_recorded() -> None:
    """`cache_control: false` in the capabilities."""
    out, degradations = translate(
        {
            "cache_control": EPH,
            "messages": [
                {"role": "system", "content": [text("a", EPH), text("b")]},
                {"role": "user", "content": [text("hi", EPH)]},
            ],
        },
        cache_control=False,
    )
    assert out["system"] == "a\nb"
    assert markers(out) == 0
    assert degradations == [CACHE_CONTROL_DROPPED]
