"""An answer cut at max_tokens after the model printed a call says so to
every client, whichever path the output filters run on: a lifted call makes
a turn that ended a tool-call turn, never a cut answer a whole one."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_message,
    anthropic_text_stream,
    openai_completion,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
SCHEMA = {"type": "object", "properties": {"file_path": {"type": "string"}}}
A_TOOLS: list[Any] = [{"name": "Read", "description": "read a file", "input_schema": SCHEMA}]
O_TOOLS: list[Any] = [{"type": "function", "function": {"name": "Read", "parameters": SCHEMA}}]
A_KW: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": A_TOOLS}
O_KW: dict[str, Any] = {"model": "m", "messages": MESSAGES, "tools": O_TOOLS}
CALL = '<tool_call>{"name": "Read", "arguments": {"file_path": "/a.py"}}</tool_call>'
TEXT = "Reading.\n" + CALL + "\nOnce I have it I will expla"
PIECES = [TEXT[:30], TEXT[30:60], TEXT[60:]]


def claude_filtered(url: str) -> str:
    """An anthropic provider with the filters on (they are off by default there)."""
    return provider_yaml(
        "claude", url, extra="output_filters: {strip_tool_markup: true, repair_tool_calls: true}"
    )


async def test_an_openai_client_gets_length_with_the_call_lifted_from_a_cut_answer(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(TEXT, finish_reason="length"))
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(**O_KW)
    choice = completion.choices[0]
    assert [c.function.name for c in choice.message.tool_calls or []] == ["Read"]
    assert choice.finish_reason == "length"


async def test_an_openai_client_streamed_a_cut_answer_gets_length_after_the_lifted_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = openai_text_stream(PIECES, finish_reason="length")
    fake_upstream.script(Reply(dialect="openai", events=events))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(**O_KW, stream=True)
        chunks = [c async for c in stream]
    deltas = [c.choices[0] for c in chunks if c.choices]
    assert [t.function.name for d in deltas for t in d.delta.tool_calls or []] == ["Read"]
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["length"]


async def test_an_anthropic_client_of_a_filtered_anthropic_provider_gets_max_tokens(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(json=anthropic_message(TEXT, stop_reason="max_tokens")),
        Reply(events=anthropic_text_stream(PIECES, stop_reason="max_tokens")),
    )
    d = await start_daemon(chain_yaml(claude_filtered(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW)
        async with client.messages.stream(**A_KW) as stream:
            streamed = await stream.get_final_message()
    for answer in (message, streamed):
        assert [b.type for b in answer.content] == ["text", "tool_use", "text"]
        assert answer.stop_reason == "max_tokens"


async def test_a_stop_sequence_after_a_lifted_call_is_a_tool_use_turn(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    body = anthropic_message("Reading.\n" + CALL, stop_reason="stop_sequence")
    body["stop_sequence"] = "END"
    fake_upstream.script(Reply(json=body))
    d = await start_daemon(chain_yaml(claude_filtered(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW, stop_sequences=["END"])
    assert message.stop_reason == "tool_use"
    assert message.stop_sequence is None


async def test_an_openai_client_of_a_filtered_anthropic_provider_gets_length(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message(TEXT, stop_reason="max_tokens")))
    d = await start_daemon(chain_yaml(claude_filtered(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(**O_KW)
    choice = completion.choices[0]
    assert [c.function.name for c in choice.message.tool_calls or []] == ["Read"]
    assert choice.finish_reason == "length"
