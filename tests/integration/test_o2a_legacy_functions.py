"""An OpenAI client using the legacy `functions` form (older clients,
LangChain agents) on an `anthropic` provider: its functions reach Claude as
tools, `function_call` as tool_choice, and a history of legacy calls and
`role: "function"` results as tool_use and tool_result blocks paired by one
id made for them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_usage
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import claude, dropped, post_chat
from tests.integration.clients import o_sdk as sdk

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK = {"role": "user", "content": "weather in Paris?"}
# The tool ids Anthropic takes.
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def legacy_call(name: str, arguments: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "function_call": {"name": name, "arguments": arguments},
    }


def legacy_result(name: str, content: str) -> dict[str, Any]:
    return {"role": "function", "name": name, "content": content}


@pytest.mark.parametrize(
    ("function_call", "tool_choice"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", {"type": "none"}),
        (
            {"name": "get_weather"},
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
    ],
)
async def test_legacy_functions_reach_claude_as_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, function_call: Any, tool_choice: Any
) -> None:
    """Each function is offered as a tool and `function_call` chooses as
    tool_choice would; one call at a time, as the legacy answer holds one.
    Neither field is recorded as dropped."""
    url = await claude(start_daemon, fake_upstream)
    body: dict[str, Any] = {"model": "x", "messages": [ASK], "functions": [WEATHER]}
    if function_call is not None:
        body["function_call"] = function_call
    with capture_logs() as logs:
        status, answer = await post_chat(url, body)
    assert status == 200, answer
    sent = fake_upstream.requests[0].json
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": WEATHER["parameters"],
        }
    ]
    assert sent["tool_choice"] == tool_choice
    assert dropped(logs) == []


async def test_a_legacy_function_call_history_reaches_claude_as_a_paired_call_and_result(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The assistant's `function_call` is a tool_use and the `role:
    "function"` message its tool_result, both with one id Claude takes."""
    url = await claude(start_daemon, fake_upstream)
    messages = [
        ASK,
        legacy_call("get_weather", '{"city": "Paris"}'),
        legacy_result("get_weather", "sunny, 21 C"),
    ]
    body = {"model": "x", "messages": messages, "functions": [WEATHER]}
    with capture_logs() as logs:
        status, answer = await post_chat(url, body)
    assert status == 200, answer
    sent = fake_upstream.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    [use] = sent[1]["content"]
    [result] = sent[2]["content"]
    assert use == {
        "type": "tool_use",
        "id": use["id"],
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert TOOL_ID.match(use["id"])
    assert result == {"type": "tool_result", "tool_use_id": use["id"], "content": "sunny, 21 C"}
    assert dropped(logs) == []


async def test_each_legacy_result_answers_the_latest_unanswered_call_of_its_name(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Two turns of calls to the same function: each result goes with its
    own call, and the ids are the same when the conversation is sent again
    one turn longer (what Claude cached of it still matches)."""
    url = await claude(start_daemon, fake_upstream)
    history = [
        ASK,
        legacy_call("get_weather", '{"city": "Paris"}'),
        legacy_result("get_weather", "sunny"),
        legacy_call("get_weather", '{"city": "Rome"}'),
        legacy_result("get_weather", "rainy"),
    ]
    for messages in (history, [*history, {"role": "assistant", "content": "ok"}, ASK]):
        status, answer = await post_chat(
            url, {"model": "x", "messages": messages, "functions": [WEATHER]}
        )
        assert status == 200, answer
    first, second = (r.json["messages"] for r in fake_upstream.requests)
    assert second[:5] == first
    calls = [
        (b["id"], b["input"]["city"])
        for m in first
        for b in m["content"]
        if b["type"] == "tool_use"
    ]
    answers = [
        (b["tool_use_id"], b["content"])
        for m in first
        for b in m["content"]
        if b["type"] == "tool_result"
    ]
    assert len({call_id for call_id, _ in calls}) == 2
    by_id = dict(answers)
    assert {city: by_id[call_id] for call_id, city in calls} == {"Paris": "sunny", "Rome": "rainy"}


async def test_a_legacy_result_whose_call_is_gone_reaches_claude_as_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A history trimmed from the front keeps a result whose call is gone:
    it is mended as a tool message's would be, never a 400."""
    url = await claude(start_daemon, fake_upstream)
    messages = [legacy_result("get_weather", "sunny"), {"role": "user", "content": "and now?"}]
    with capture_logs() as logs:
        status, answer = await post_chat(url, {"model": "x", "messages": messages})
    assert status == 200, answer
    [turn] = fake_upstream.requests[0].json["messages"]
    assert turn["role"] == "user"
    assert all(b["type"] == "text" for b in turn["content"])
    assert "sunny" in turn["content"][0]["text"]
    assert [x.split(":")[0] for x in dropped(logs)] == ["messages.tool_result"]


async def test_a_legacy_function_message_without_a_name_is_refused_naming_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await claude(start_daemon, fake_upstream)
    messages = [ASK, legacy_call("get_weather", "{}"), {"role": "function", "content": "sunny"}]
    status, answer = await post_chat(url, {"model": "x", "messages": messages})
    assert status == 400
    assert "messages[2].name" in answer["error"]["message"]
    assert fake_upstream.requests == []


# Claude's answer calling the function, whole and streamed.
CALL = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
CALL_MESSAGE = {
    **anthropic_message(""),
    "content": [{"type": "text", "text": "Let me look."}, CALL],
    "stop_reason": "tool_use",
}
CALL_EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {"type": "message_start", "message": {**CALL_MESSAGE, "content": [], "stop_reason": None}},
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {**CALL, "input": {}}},
    ),
    *(
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": fragment},
            },
        )
        for fragment in ('{"city": ', '"Paris"}')
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": anthropic_usage(10, 5),
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


async def test_claudes_call_reaches_a_legacy_client_as_its_function_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A client that declared `functions` reads the call in `function_call`
    (it knows no `tool_calls`), with the finish_reason `function_call`."""
    fake_upstream.default = Reply(json=CALL_MESSAGE)
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    body = {"model": "x", "messages": [ASK], "functions": [WEATHER]}
    status, answer = await post_chat(d.url, body)
    assert status == 200, answer
    [choice] = answer["choices"]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert "tool_calls" not in choice["message"]


async def test_claudes_streamed_call_reaches_a_legacy_client_as_function_call_deltas(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(events=CALL_EVENTS)
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    async with sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="x",
            messages=[ASK],
            functions=[WEATHER],  # type: ignore[list-item]
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert not any(delta.tool_calls for delta in deltas)
    calls = [delta.function_call for delta in deltas if delta.function_call]
    assert calls[0].name == "get_weather"
    assert "".join(call.arguments or "" for call in calls) == '{"city": "Paris"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "function_call"
