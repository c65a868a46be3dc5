"""What a local model printed around or inside tool-call markup, as the client
reads it: escaped emoji in call syntax, prose that names the tags, a closing
tag inside an argument string."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
A_TOOLS = [
    {"name": "Read", "description": "read a file", "input_schema": {"type": "object"}},
    {"name": "Write", "description": "write a file", "input_schema": {"type": "object"}},
]
O_TOOLS = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
    for t in A_TOOLS
]
EMOJI_CALL = 'Write(file_path="a.md", content="hi \\ud83d\\ude00")'
PROSE = "Qwen wraps each call in `<tool_call>` and `</tool_call>` tags, with JSON inside."
WRITE_DOC = (
    '<tool_call>{"name": "Write", "arguments": {"file_path": "fmt.md", '
    '"content": "End each call with </tool_call>."}}</tool_call>'
)
DOC_INPUT = {"file_path": "fmt.md", "content": "End each call with </tool_call>."}


def replies(text: str, *, stream: bool) -> Reply:
    if stream:
        # Split mid-way, as a server's tokens would be.
        half = len(text) // 2
        return Reply(dialect="openai", events=openai_text_stream([text[:half], text[half:]]))
    return Reply(dialect="openai", json=openai_completion(text))


async def ask(url: str, *, stream: bool, tools: list[Any] | None = None) -> anthropic.types.Message:
    kw: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES}
    if tools is not None:
        kw["tools"] = tools
    async with a_sdk(url) as client:
        if not stream:
            return await client.messages.create(**kw)
        async with client.messages.stream(**kw) as s:
            return await s.get_final_message()


def blocks(message: anthropic.types.Message) -> list[tuple[str, Any]]:
    return [
        (b.type, b.input if b.type == "tool_use" else getattr(b, "text", None))
        for b in message.content
    ]


# escaped surrogates in call syntax


@pytest.mark.parametrize("stream", [False, True])
async def test_call_syntax_with_an_escaped_emoji_is_lifted_with_the_emoji(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    fake_upstream.script(replies(EMOJI_CALL, stream=stream))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    message = await ask(d.url, stream=stream, tools=A_TOOLS)
    assert blocks(message) == [("tool_use", {"file_path": "a.md", "content": "hi \U0001f600"})]
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("stream", [False, True])
async def test_call_syntax_with_a_lone_escaped_surrogate_stays_text_and_the_provider_healthy(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    text = 'Write(file_path="a.md", content="hi \\ud83d")'
    fake_upstream.script(replies(text, stream=stream))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    message = await ask(d.url, stream=stream, tools=A_TOOLS)
    assert blocks(message) == [("text", text)]
    assert message.stop_reason == "end_turn"
    [status] = d.daemon.status().providers
    assert status.state == "ok" and status.consecutive_failures == 0


async def test_an_openai_client_gets_the_escaped_emoji_in_the_call_arguments(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(replies(EMOJI_CALL, stream=False))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="x", messages=MESSAGES, tools=O_TOOLS
        )
    [call] = completion.choices[0].message.tool_calls or []
    assert "\U0001f600" in call.function.arguments


# prose that names the tags


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("tools", [A_TOOLS, None], ids=["tools", "no-tools"])
async def test_prose_naming_the_tool_call_tags_loses_at_most_the_tags(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool, tools: Any
) -> None:
    fake_upstream.script(replies(PROSE, stream=stream))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    message = await ask(d.url, stream=stream, tools=tools)
    assert blocks(message) == [
        ("text", "Qwen wraps each call in `` and `` tags, with JSON inside.")
    ]


# the closing tag inside an argument string


@pytest.mark.parametrize("stream", [False, True])
async def test_a_closing_tag_inside_an_argument_string_is_part_of_the_lifted_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    fake_upstream.script(replies(WRITE_DOC, stream=stream))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    message = await ask(d.url, stream=stream, tools=A_TOOLS)
    assert blocks(message) == [("tool_use", DOC_INPUT)]
    assert message.stop_reason == "tool_use"


async def test_an_openai_stream_lifts_a_call_whose_argument_holds_the_closing_tag(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(replies("Writing.\n" + WRITE_DOC, stream=True))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="x", messages=MESSAGES, stream=True, tools=O_TOOLS
        )
        out = [c async for c in stream if c.choices]
    content = "".join(c.choices[0].delta.content or "" for c in out)
    calls = [t for c in out for t in c.choices[0].delta.tool_calls or []]
    assert content == "Writing."
    assert [(t.function.name, t.function.arguments) for t in calls] == [
        ("Write", '{"file_path":"fmt.md","content":"End each call with </tool_call>."}')
    ]
