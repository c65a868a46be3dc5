"""Tool calls lifted from a local model's text, as an OpenAI client gets them:
one content string, call ids of OpenAI's shape unique across turns, and
stream indices that rise in the order the calls are sent."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
SCHEMA = {"type": "object", "properties": {"file_path": {"type": "string"}}}
A_TOOLS = [
    {"name": "Read", "description": "read a file", "input_schema": SCHEMA},
    {"name": "Bash", "description": "run a command", "input_schema": {"type": "object"}},
]
O_TOOLS = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
    for t in A_TOOLS
]
CALL_TEXT = '<tool_call>{"name": "Read", "arguments": {"file_path": "/a.py"}}</tool_call>'
AROUND = "Let me check.\n" + CALL_TEXT + "\nThen I will fix it."


def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    return "", {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


async def stream_chunks(url: str) -> list[Any]:
    async with o_sdk(url) as client:
        stream = await client.chat.completions.create(
            model="x", messages=MESSAGES, stream=True, tools=O_TOOLS
        )
        return [c async for c in stream if c.choices]


# the text around a lifted call


async def test_openai_unary_content_keeps_the_text_before_and_after_a_lifted_call_apart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(AROUND)),
        Reply(dialect="openai", json=openai_completion("I will call" + CALL_TEXT + " now")),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        first = await client.chat.completions.create(model="x", messages=MESSAGES, tools=O_TOOLS)
        second = await client.chat.completions.create(model="x", messages=MESSAGES, tools=O_TOOLS)
    message = first.choices[0].message
    assert [c.function.name for c in message.tool_calls or []] == ["Read"]
    assert message.content == "Let me check.\nThen I will fix it."
    assert first.choices[0].finish_reason == "tool_calls"
    assert second.choices[0].message.content == "I will call now"


async def test_a_stream_keeps_the_text_around_a_lifted_call_apart_in_each_dialect(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """An OpenAI client's content deltas join into one readable string; an
    Anthropic client (unary and stream) still gets two trimmed text blocks."""
    chunks = ["Let me check.\n", CALL_TEXT, "\nThen I will fix it."]
    fake_upstream.script(
        Reply(dialect="openai", events=openai_text_stream(chunks)),
        Reply(dialect="openai", json=openai_completion(AROUND)),
        Reply(dialect="openai", events=openai_text_stream(chunks)),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    out = await stream_chunks(d.url)
    content = "".join(c.choices[0].delta.content or "" for c in out)
    calls = [t for c in out for t in c.choices[0].delta.tool_calls or []]
    assert [t.function.name for t in calls] == ["Read"]
    assert content == "Let me check.\nThen I will fix it."
    async with a_sdk(d.url) as client:
        kw: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES}
        unary = await client.messages.create(**kw, tools=A_TOOLS)
        async with client.messages.stream(**kw, tools=A_TOOLS) as stream:
            streamed = await stream.get_final_message()
    for message in (unary, streamed):
        assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
            ("text", "Let me check."),
            ("tool_use", None),
            ("text", "Then I will fix it."),
        ]


# ids of lifted calls


async def test_lifted_call_ids_are_unique_across_turns_and_survive_a_fallback_to_claude(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(
        chain_yaml(local(fake_upstream.url), provider_yaml("claude", fake_upstream.url))
    )
    history: list[Any] = [{"role": "user", "content": "read a and b"}]
    ids: list[str] = []
    async with o_sdk(d.url) as client:
        for path in ("/a.py", "/b.py"):
            text = (
                f'<tool_call>{{"name": "Read", "arguments": {{"file_path": "{path}"}}}}</tool_call>'
            )
            # A local server may well answer every turn with the same completion id.
            fake_upstream.script(Reply(dialect="openai", json=openai_completion(text)))
            completion = await client.chat.completions.create(
                model="x", messages=history, tools=O_TOOLS
            )
            message = completion.choices[0].message
            [call] = message.tool_calls or []
            ids.append(call.id)
            history.append(message.model_dump(exclude_none=True))
            history.append({"role": "tool", "tool_call_id": call.id, "content": f"{path}: ok"})
        fake_upstream.script(
            Reply(status=503, dialect="openai", json={"error": {"message": "down"}}),
            Reply(json=anthropic_message("Both files are fine.")),
        )
        await client.chat.completions.create(model="x", messages=history, tools=O_TOOLS)
    assert all(re.fullmatch(r"call_[A-Za-z0-9]{24}", i) for i in ids), ids
    assert ids[0] != ids[1]
    sent = fake_upstream.requests[-1].json
    tool_use_ids = [
        b["id"]
        for m in sent["messages"]
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if b.get("type") == "tool_use"
    ]
    assert tool_use_ids == ids


async def test_two_calls_lifted_from_one_answer_get_two_ids(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    text = CALL_TEXT + '\n<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(text)),
        Reply(dialect="openai", events=openai_text_stream([text])),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="x", messages=MESSAGES, tools=O_TOOLS
        )
    unary_ids = [c.id for c in completion.choices[0].message.tool_calls or []]
    out = await stream_chunks(d.url)
    stream_ids = [t.id for c in out for t in c.choices[0].delta.tool_calls or [] if t.id]
    for got in (unary_ids, stream_ids):
        assert len(got) == 2 and len(set(got)) == 2, got
    assert not set(unary_ids) & set(stream_ids)


# indices in a stream


async def test_a_lifted_call_sent_before_the_upstreams_own_takes_the_lower_index(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The model prints one call as a bare JSON line, then the server streams
    one of its own: the lifted one goes out first, so it is index 0, and the
    openai SDK's stream helper (which needs rising indices) assembles both."""
    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Reading.\n"}),
        chunk({"content": '{"name": "Read", "arguments": {"file_path": "/a.py"}}'}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_up",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": '{"command": "ls"}'},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
    ]
    fake_upstream.script(Reply(dialect="openai", events=events))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with (
        o_sdk(d.url) as client,
        client.chat.completions.stream(model="x", messages=MESSAGES, tools=O_TOOLS) as stream,
    ):
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    got = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls]
    assert [g[1:] for g in got] == [("Read", {"file_path": "/a.py"}), ("Bash", {"command": "ls"})]
    assert got[1][0] == "call_up"
    assert final.choices[0].message.content == "Reading."
