"""An `anthropic` provider's output filters for OpenAI clients: the
translated answer goes through them in the OpenAI dialect, unary and
streamed (`reasoning_content`, `tool_calls`), as an Anthropic client's
answer on the same provider does in its own."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import o_sdk as sdk

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
THINK = "output_filters:\n  think: thinking\n"
REPAIR = "output_filters: {strip_tool_markup: true, repair_tool_calls: true}"
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}},
        },
    }
]
CALL_TEXT = '<tool_call>{"name": "Read", "arguments": {"file_path": "/a.py"}}</tool_call>'


async def streamed(url: str, **kw: Any) -> list[Any]:
    async with sdk(url) as client:
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, **kw
        )
        return [c.choices[0] async for c in stream if c.choices]


def joined(choices: list[Any], key: str) -> str:
    return "".join(
        (c.delta.content if key == "content" else (c.delta.model_extra or {}).get(key)) or ""
        for c in choices
    )


async def test_think_text_of_an_anthropic_provider_is_reasoning_content_for_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("<think>pondering</think>The answer")))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url, extra=THINK)))
    async with sdk(d.url) as client:
        completion = await client.chat.completions.create(model="m", messages=MESSAGES)
    message = completion.choices[0].message
    assert message.content == "The answer"
    assert (message.model_extra or {}).get("reasoning_content") == "pondering"
    assert completion.choices[0].finish_reason == "stop"


async def test_streamed_think_text_of_an_anthropic_provider_is_reasoning_content_deltas(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["<think>ponde", "ring</think>", "The answer"]))
    )
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url, extra=THINK)))
    choices = await streamed(d.url)
    assert joined(choices, "content") == "The answer"
    assert joined(choices, "reasoning_content") == "pondering"
    assert [c.finish_reason for c in choices if c.finish_reason] == ["stop"]


async def test_a_call_an_anthropic_provider_printed_reaches_an_openai_client_as_tool_calls(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("Reading.\n" + CALL_TEXT)))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url, extra=REPAIR)))
    async with sdk(d.url) as client:
        completion = await client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.message.content == "Reading."
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "Read",
        {"file_path": "/a.py"},
    )
    assert choice.finish_reason == "tool_calls"
    status = next(p for p in d.daemon.status().providers if p.name == "local")
    assert status.tool_call_repairs == 1


async def test_a_streamed_call_an_anthropic_provider_printed_is_a_tool_calls_delta(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    pieces = ["Reading.\n", CALL_TEXT[:25], CALL_TEXT[25:]]
    fake_upstream.script(Reply(events=anthropic_text_stream(pieces)))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url, extra=REPAIR)))
    choices = await streamed(d.url, tools=TOOLS)
    assert joined(choices, "content") == "Reading."
    calls = [t for c in choices for t in c.delta.tool_calls or []]
    assert [(t.index, t.function.name) for t in calls] == [(0, "Read")]
    assert json.loads(calls[0].function.arguments) == {"file_path": "/a.py"}
    assert [c.finish_reason for c in choices if c.finish_reason] == ["tool_calls"]
    status = next(p for p in d.daemon.status().providers if p.name == "local")
    assert status.tool_call_repairs == 1
