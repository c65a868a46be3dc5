"""first_byte_s waits for a backend to start answering. Once its content
frames come, an answer is under way, even while the output filters hold it
back from the client (a call printed as text until it is whole, reasoning
until `</think>`): the attempt is not failed `timeout_first_byte`, however
long the held text takes to arrive (a slow local model writing a whole file
as a printed call)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_text_stream, openai_text_stream
from tests.fakes.upstream import Dialect, FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

pytestmark = pytest.mark.timeout(30)

CALL = '<tool_call>{"name": "Read", "arguments": {"path": "src/main.py"}}</tool_call>'
REASONING = "Let me think about this carefully. " * 6 + "</think>\n\nThe answer is 4."
# Far below the ~1.5 s the upstream takes to send its answer, which it starts at once.
FAST_START = "timeouts: {first_byte_s: 0.6}"
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}
A_TOOLS: list[Any] = [{"name": "Read", "description": "Read", "input_schema": SCHEMA}]
O_TOOLS: list[Any] = [{"type": "function", "function": {"name": "Read", "parameters": SCHEMA}}]
MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]


def pieces(text: str, n: int = 10) -> list[str]:
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def slow(dialect: Dialect, text: str, **faults: Any) -> Reply:
    """`text` streamed from the first frame on, in ten pieces 0.15 s apart."""
    events = openai_text_stream if dialect == "openai" else anthropic_text_stream
    return Reply(dialect=dialect, events=events(pieces(text)), delay_between_events=0.15, **faults)


async def openai_stream(url: str, **kw: Any) -> tuple[list[Any], Any]:
    """The chunks an OpenAI SDK reads from a stream, and the response's headers."""
    async with o_sdk(url) as client:
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, **kw
        )
        return [c async for c in stream], stream.response.headers


def called(chunks: list[Any]) -> list[str]:
    return [
        tc.function.name
        for c in chunks
        for ch in c.choices
        for tc in ch.delta.tool_calls or []
        if tc.function and tc.function.name
    ]


def finish_of(chunks: list[Any]) -> str | None:
    return next((ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason), None)


async def test_a_call_printed_slower_than_first_byte_s_reaches_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(slow("openai", CALL))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, FAST_START)))
    chunks, _ = await openai_stream(d.url, tools=O_TOOLS)
    assert called(chunks) == ["Read"]
    assert finish_of(chunks) == "tool_calls"
    assert len(fake_upstream.requests) == 1


async def test_reasoning_of_a_template_opened_think_block_longer_than_first_byte_s_reaches_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(slow("openai", REASONING))
    extra = FAST_START + "\noutput_filters: {assume_think_open: true}"
    d = await start_daemon(chain_yaml(local(fake_upstream.url, extra)))
    chunks, _ = await openai_stream(d.url)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    reasoning = "".join(
        getattr(ch.delta, "reasoning_content", None) or "" for c in chunks for ch in c.choices
    )
    assert text == "The answer is 4."
    assert reasoning.startswith("Let me think")
    assert len(fake_upstream.requests) == 1


async def test_a_call_printed_slower_than_first_byte_s_by_an_anthropic_provider_reaches_its_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(slow("anthropic", CALL))
    extra = FAST_START + "\noutput_filters: {repair_tool_calls: true}"
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url, extra=extra)))
    kw: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": A_TOOLS}
    async with a_sdk(d.url) as client, client.messages.stream(**kw) as stream:
        message = await stream.get_final_message()
    assert [(b.type, getattr(b, "name", None)) for b in message.content] == [("tool_use", "Read")]
    assert message.stop_reason == "tool_use"
    assert len(fake_upstream.requests) == 1
