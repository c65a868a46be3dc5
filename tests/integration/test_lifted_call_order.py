"""A call lifted from an openai_compat answer's text and the upstream's own
tool call reach the client in one order, whole or streamed, in either
dialect: the lifted one first, as the text that held it came first."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import local, o_sdk, unary_and_streamed

SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}
NAMES = ("Read", "Bash")
TEXT = 'Go.\n<tool_call>{"name": "Read", "arguments": {"path": "a.py"}}</tool_call>'
# The model prints one call, then its server sends one of its own.
NATIVE = {
    "id": "call_up",
    "type": "function",
    "function": {"name": "Bash", "arguments": '{"path": "ls"}'},
}
MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
EXPECTED = [("Read", {"path": "a.py"}), ("Bash", {"path": "ls"})]


def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return ("", {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})


def whole() -> Reply:
    message = {"role": "assistant", "content": TEXT, "tool_calls": [NATIVE]}
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
    body = {"id": "c", "object": "chat.completion", "model": "m", "choices": [choice]}
    return Reply(dialect="openai", json=body)


def streamed() -> Reply:
    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": TEXT}),
        chunk({"tool_calls": [{"index": 0, **NATIVE}]}),
        chunk({}, "tool_calls"),
    ]
    return Reply(dialect="openai", events=events)


async def test_the_lifted_call_comes_first_whole_or_streamed_in_either_dialect(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(whole(), streamed(), whole(), streamed())
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    tools: list[Any] = [
        {"type": "function", "function": {"name": n, "parameters": SCHEMA}} for n in NAMES
    ]
    async with o_sdk(d.url) as client:
        unary = await client.chat.completions.create(model="m", messages=MESSAGES, tools=tools)
        async with client.chat.completions.stream(
            model="m", messages=MESSAGES, tools=tools
        ) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
    for completion in (unary, final):
        calls = completion.choices[0].message.tool_calls or []
        got = [(c.function.name, json.loads(c.function.arguments)) for c in calls]  # type: ignore[union-attr]
        assert got == EXPECTED
        assert completion.choices[0].finish_reason == "tool_calls"
    # The Anthropic translation places them so too (response_o2a).
    a_tools = [{"name": n, "description": n, "input_schema": SCHEMA} for n in NAMES]
    kw = {"model": "m", "max_tokens": 50, "messages": MESSAGES, "tools": a_tools}
    for message in await unary_and_streamed(d.url, kw):
        assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == EXPECTED
