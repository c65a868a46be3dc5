"""A local model that prints its tool calls as `<tool_call>{…}</tool_call>`
text, asked to write code that handles `<think>` tags: the call is lifted
whole, on every path whose output filters are on, in the client's dialect.

The tags inside the call's JSON string are the file's source, never the
model's reasoning: before the fix the think filter cut the JSON at them, no
call was lifted, part of the source became a thinking block and the rest
reached the client as stray text. Reasoning outside the call still turns
into thinking.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_message,
    anthropic_text_stream,
    openai_completion,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

SOURCE = (
    "def strip_reasoning(text):\n"
    "    # models wrap their reasoning in <think>...</think>\n"
    "    return text.split('</think>')[-1]\n"
)
ARGS = {"file_path": "/work/strip.py", "content": SOURCE}
CALL = json.dumps({"name": "Write", "arguments": ARGS})
THOUGHT = "The user wants a helper."
# As a local model streams it: the call cut inside its arguments' tags.
PIECES = [
    f"<think>{THOUGHT}</think>",
    "I will write it.\n<tool_call>",
    CALL[:144],  # ends inside "<think>"
    CALL[144:152],  # inside "</think>"
    CALL[152:],
    "</tool_call>",
]
WHOLE = "".join(PIECES)
MESSAGES: list[Any] = [{"role": "user", "content": "Write a helper that strips think tags."}]
SCHEMA = {
    "type": "object",
    "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
}
A_TOOLS: list[Any] = [{"name": "Write", "description": "write a file", "input_schema": SCHEMA}]
O_TOOLS: list[Any] = [{"type": "function", "function": {"name": "Write", "parameters": SCHEMA}}]
FILTERS_ON = "output_filters: {think: thinking, strip_tool_markup: true, repair_tool_calls: true}"


def blocks(message: anthropic.types.Message) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for b in message.content:
        if b.type == "text":
            out.append(("text", b.text))
        elif b.type == "thinking":
            out.append(("thinking", b.thinking))
        elif b.type == "tool_use":
            out.append(("tool_use", (b.name, b.input)))
    return out


EXPECTED_BLOCKS = [
    ("thinking", THOUGHT),
    ("text", "I will write it."),
    ("tool_use", ("Write", ARGS)),
]


async def a_stream(url: str) -> anthropic.types.Message:
    async with (
        a_sdk(url) as client,
        client.messages.stream(
            model="m", max_tokens=1000, messages=MESSAGES, tools=A_TOOLS
        ) as stream,
    ):
        return await stream.get_final_message()


# Anthropic client


async def test_anthropic_stream_from_an_openai_backend_lifts_the_call_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=openai_text_stream(PIECES), dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    message = await a_stream(d.url)
    assert blocks(message) == EXPECTED_BLOCKS
    assert message.stop_reason == "tool_use"


async def test_anthropic_answer_from_an_openai_backend_lifts_the_call_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=openai_completion(WHOLE), dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(
            model="m", max_tokens=1000, messages=MESSAGES, tools=A_TOOLS
        )
    assert blocks(message) == EXPECTED_BLOCKS
    assert message.stop_reason == "tool_use"


async def test_anthropic_provider_with_filters_on_lifts_the_call_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(PIECES)), Reply(json=anthropic_message(WHOLE))
    )
    claude = provider_yaml("claude", fake_upstream.url, extra=FILTERS_ON)
    d = await start_daemon(chain_yaml(claude))
    assert blocks(await a_stream(d.url)) == EXPECTED_BLOCKS
    async with a_sdk(d.url) as client:
        message = await client.messages.create(
            model="m", max_tokens=1000, messages=MESSAGES, tools=A_TOOLS
        )
    assert blocks(message) == EXPECTED_BLOCKS


# OpenAI client


async def test_openai_stream_lifts_the_call_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=openai_text_stream(PIECES), dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS, stream=True
        )
        chunks = [c async for c in stream if c.choices]
    deltas = [c.choices[0].delta for c in chunks]
    content = "".join(d.content or "" for d in deltas)
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    calls = [call.function for d in deltas for call in d.tool_calls or []]
    assert (reasoning, content) == (THOUGHT, "I will write it.")
    assert [(f.name, json.loads(f.arguments or "")) for f in calls if f] == [("Write", ARGS)]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_openai_answer_lifts_the_call_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=openai_completion(WHOLE), dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        answer = await client.chat.completions.create(model="m", messages=MESSAGES, tools=O_TOOLS)
    message = answer.choices[0].message
    assert message.content == "I will write it."
    assert getattr(message, "reasoning_content", None) == THOUGHT
    calls = [c.model_dump()["function"] for c in message.tool_calls or []]
    assert [(f["name"], json.loads(f["arguments"])) for f in calls] == [("Write", ARGS)]
    assert answer.choices[0].finish_reason == "tool_calls"
