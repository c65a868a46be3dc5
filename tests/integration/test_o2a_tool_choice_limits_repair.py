"""A call a model printed as text is lifted only as a tool the client lets
it call: none under tool_choice none, only the forced one when one is
forced, for either client dialect on either provider kind."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
SCHEMA = {"type": "object", "properties": {"file_path": {"type": "string"}}}
A_TOOLS: list[Any] = [
    {"name": "Read", "description": "read a file", "input_schema": SCHEMA},
    {"name": "Write", "description": "write a file", "input_schema": {"type": "object"}},
]
O_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
    for t in A_TOOLS
]
CALL_TEXT = '<tool_call>{"name": "Read", "arguments": {"file_path": "/a.py"}}</tool_call>'
REPAIR = "output_filters: {strip_tool_markup: true, repair_tool_calls: true}"


async def test_an_anthropic_clients_tool_choice_none_lifts_no_printed_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", json=openai_completion("Summary.\n" + CALL_TEXT)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(
            model="m",
            max_tokens=100,
            messages=MESSAGES,
            tools=A_TOOLS,
            tool_choice={"type": "none"},
        )
    assert [b.type for b in message.content] == ["text"]
    assert message.stop_reason == "end_turn"


async def test_an_anthropic_clients_streamed_tool_choice_none_lifts_no_printed_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    pieces = ["Summary.\n", CALL_TEXT[:20], CALL_TEXT[20:]]
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(pieces)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with (
        a_sdk(d.url) as client,
        client.messages.stream(
            model="m",
            max_tokens=100,
            messages=MESSAGES,
            tools=A_TOOLS,
            tool_choice={"type": "none"},
        ) as stream,
    ):
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["text"]
    assert message.stop_reason == "end_turn"


async def test_an_anthropic_clients_forced_tool_is_the_only_one_lifted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", json=openai_completion(CALL_TEXT)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(
            model="m",
            max_tokens=100,
            messages=MESSAGES,
            tools=A_TOOLS,
            tool_choice={"type": "tool", "name": "Write"},
        )
    assert [b.type for b in message.content if b.type == "tool_use"] == []
    assert message.stop_reason == "end_turn"


async def test_an_openai_clients_tool_choice_none_lifts_no_printed_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", json=openai_completion("Summary.\n" + CALL_TEXT)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS, tool_choice="none"
        )
    choice = completion.choices[0]
    assert not choice.message.tool_calls
    assert choice.finish_reason == "stop"


async def test_an_openai_clients_forced_function_is_the_only_one_lifted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", json=openai_completion(CALL_TEXT)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    forced: Any = {"type": "function", "function": {"name": "Write"}}
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS, tool_choice=forced
        )
    assert not completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "stop"


async def test_an_openai_clients_tool_choice_none_lifts_no_call_an_anthropic_provider_printed(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("Summary.\n" + CALL_TEXT)))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url, extra=REPAIR)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS, tool_choice="none"
        )
    choice = completion.choices[0]
    assert not choice.message.tool_calls
    assert choice.finish_reason == "stop"
