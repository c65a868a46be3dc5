"""A call lifted from an answer the upstream ended with `content_filter`:
each client dialect learns the answer was cut by a filter (`refusal`,
`finish_reason: content_filter`), whole and streamed, so that a client does
not run a call from an answer a safety filter stopped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

CALL = '<tool_call>{"name": "Bash", "arguments": {"command": "rm -rf build"}}</tool_call>'
TEXT = "Cleaning.\n" + CALL
SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}}
MESSAGES: list[Any] = [{"role": "user", "content": "clean the build"}]


def reply(finish: str, streamed: bool) -> Reply:
    if streamed:
        events = openai_text_stream([TEXT[:20], TEXT[20:]], finish_reason=finish)
        return Reply(dialect="openai", events=events)
    return Reply(dialect="openai", json=openai_completion(TEXT, finish_reason=finish))


@pytest.mark.parametrize(("finish", "stop"), [("content_filter", "refusal"), ("stop", "tool_use")])
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_anthropic_client_is_told_the_filter_cut_an_answer_with_a_lifted_call(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    finish: str,
    stop: str,
    streamed: bool,
) -> None:
    fake_upstream.script(reply(finish, streamed))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    tools: list[Any] = [{"name": "Bash", "description": "run", "input_schema": SCHEMA}]
    kw: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": tools}
    async with a_sdk(d.url) as client:
        if streamed:
            async with client.messages.stream(**kw) as stream:
                message = await stream.get_final_message()
        else:
            message = await client.messages.create(**kw)
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.stop_reason == stop


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_openai_client_is_told_the_filter_cut_an_answer_with_a_lifted_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, streamed: bool
) -> None:
    fake_upstream.script(reply("content_filter", streamed))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    tools: list[Any] = [{"type": "function", "function": {"name": "Bash", "parameters": SCHEMA}}]
    async with o_sdk(d.url) as client:
        if streamed:
            stream = await client.chat.completions.create(
                model="m", messages=MESSAGES, tools=tools, stream=True
            )
            choices = [c.choices[0] async for c in stream if c.choices]
            calls = [t for ch in choices for t in ch.delta.tool_calls or []]
            names = [t.function.name for t in calls if t.function and t.function.name]
            finishes = [ch.finish_reason for ch in choices if ch.finish_reason]
        else:
            completion = await client.chat.completions.create(
                model="m", messages=MESSAGES, tools=tools
            )
            choice = completion.choices[0]
            names = [t.function.name for t in choice.message.tool_calls or []]  # type: ignore[union-attr]
            finishes = [choice.finish_reason]
    assert (names, finishes) == (["Bash"], ["content_filter"])
