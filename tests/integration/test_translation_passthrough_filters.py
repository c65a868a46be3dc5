"""Output filters on the same-dialect paths: on, they work in the client's dialect; off, bytes."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import msgspec
import pytest

from coderouterd.wire.sse import SSEDecoder
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_message,
    anthropic_stream_error,
    anthropic_text_stream,
    openai_completion,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply, sse_frame
from tests.integration.clients import a_sdk, local, o_sdk

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
READ_TOOL = {
    "name": "Read",
    "description": "read a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
}
OPENAI_READ = {
    "type": "function",
    "function": {"name": "Read", "parameters": READ_TOOL["input_schema"]},
}
CALL_TEXT = '<tool_call>{"name": "Read", "arguments": {"file_path": "/a.py"}}</tool_call>'
FILTERS_ON = "output_filters: {think: thinking, strip_tool_markup: true, repair_tool_calls: true}"
FILTERS_OFF = "output_filters: {think: 'off', strip_tool_markup: false, repair_tool_calls: false}"


def claude(url: str, extra: str = "") -> str:
    return provider_yaml("claude", url, extra=extra)


async def a_stream(url: str, **kw: Any) -> anthropic.types.Message:
    async with (
        a_sdk(url) as client,
        client.messages.stream(model="m", max_tokens=100, messages=MESSAGES, **kw) as stream,
    ):
        return await stream.get_final_message()


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


# Anthropic client, anthropic provider


async def test_filters_on_an_anthropic_provider_turn_think_text_into_a_thinking_block(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["<think>pla", "n</think>", "Done."])))
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, FILTERS_ON)))
    message = await a_stream(d.url)
    assert blocks(message) == [("thinking", "plan"), ("text", "Done.")]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 10 and message.usage.output_tokens == 5


async def test_filters_on_an_anthropic_provider_lift_a_tool_call_written_as_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["Reading.\n", CALL_TEXT[:30], CALL_TEXT[30:]]))
    )
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, FILTERS_ON)))
    message = await a_stream(d.url, tools=[READ_TOOL])
    assert blocks(message) == [("text", "Reading."), ("tool_use", ("Read", {"file_path": "/a.py"}))]
    assert message.stop_reason == "tool_use"
    status = next(p for p in d.daemon.status().providers if p.name == "claude")
    assert status.tool_call_repairs == 1


async def test_structured_blocks_of_an_anthropic_provider_pass_the_filters_in_order(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = anthropic_text_stream(["<think>x</think>see"])
    tool = {"type": "tool_use", "id": "toolu_up", "name": "Read", "input": {}}
    start = {"type": "content_block_start", "index": 1, "content_block": tool}
    delta = {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"file_path": "/b"}'},
    }
    stop = {"type": "content_block_stop", "index": 1}
    events[-3:-2] = [events[-3], ("content_block_start", start), ("content_block_delta", delta)]
    events.insert(-2, ("content_block_stop", stop))
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, FILTERS_ON)))
    message = await a_stream(d.url, tools=[READ_TOOL])
    assert blocks(message) == [
        ("thinking", "x"),
        ("text", "see"),
        ("tool_use", ("Read", {"file_path": "/b"})),
    ]
    assert getattr(message.content[2], "id", None) == "toolu_up"


def block_events(index: int, start: dict[str, Any], *deltas: dict[str, Any]) -> list[Any]:
    return [
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        ),
        *(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


async def test_signed_and_redacted_thinking_pass_the_filters_unchanged(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Signatures must come back to Anthropic verbatim: the filters never touch them.
    thinking = block_events(
        0,
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "thinking_delta", "thinking": "let me "},
        {"type": "thinking_delta", "thinking": "see"},
        {"type": "signature_delta", "signature": "EqQBCkgIARAB+sig=="},
    )
    redacted = block_events(1, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafP"})
    events = anthropic_text_stream(["done"])
    for e in events:
        if "index" in e[1]:
            e[1]["index"] = 2
    events[1:1] = [*thinking, *redacted]
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, FILTERS_ON)))
    message = await a_stream(d.url)
    first, second, third = message.content
    assert (first.type, getattr(first, "thinking", None)) == ("thinking", "let me see")
    assert getattr(first, "signature", None) == "EqQBCkgIARAB+sig=="
    assert (second.type, getattr(second, "data", None)) == (
        "redacted_thinking",
        "EmwKAhgBEgy3va3pzix/LafP",
    )
    assert (third.type, getattr(third, "text", None)) == ("text", "done")


@pytest.mark.parametrize("filters", [FILTERS_ON, FILTERS_OFF])
async def test_pings_unknown_events_and_an_error_after_content_reach_the_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, filters: str
) -> None:
    events = anthropic_text_stream(["one ", "two"])
    second = [i for i, (name, _) in enumerate(events) if name == "content_block_delta"][1]
    future = ("content_block_future", {"type": "content_block_future", "index": 0})
    events[second:second] = [("ping", {"type": "ping"}), future]
    # The provider fails mid-answer: an error event instead of its last three.
    events[-3:] = [anthropic_stream_error("overloaded_error", "busy")]
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, filters)))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{d.url}/v1/messages",
            json={"model": "m", "max_tokens": 100, "messages": MESSAGES, "stream": True},
        ) as resp,
    ):
        got = [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(await resp.read())]
    names = [n for n, _ in got]
    text = "".join(d["delta"].get("text", "") for n, d in got if n == "content_block_delta")
    assert text == "one two"
    assert names[-1] == "error" and "message_stop" not in names
    assert got[-1][1]["error"]["type"] == "overloaded_error"
    # Committed: no other provider was asked.
    assert len(fake_upstream.requests) == 1


CITATION = {
    "type": "char_location",
    "cited_text": "The sky is blue.",
    "document_index": 0,
    "document_title": "facts",
    "start_char_index": 0,
    "end_char_index": 16,
}


def cite(index: int) -> tuple[str, dict[str, Any]]:
    delta = {"type": "citations_delta", "citation": CITATION}
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


async def test_citations_in_a_filtered_anthropic_stream_stay_with_their_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # One text block: a citation before any text, one inside it, then a call
    # written as text (lifted): both citations stay with the text.
    events = anthropic_text_stream(["According to the notes, ", "the sky is blue.", CALL_TEXT])
    text_deltas = [i for i, (name, _) in enumerate(events) if name == "content_block_delta"]
    events.insert(text_deltas[1], cite(0))
    events.insert(text_deltas[0], cite(0))
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, FILTERS_ON)))
    message = await a_stream(d.url, tools=[READ_TOOL])
    assert blocks(message) == [
        ("text", "According to the notes, the sky is blue."),
        ("tool_use", ("Read", {"file_path": "/a.py"})),
    ]
    text = message.content[0]
    assert text.type == "text" and text.citations is not None
    assert [c.model_dump(exclude_none=True) for c in text.citations] == [CITATION, CITATION]


async def test_filters_on_an_anthropic_provider_apply_to_a_whole_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("<think>hm</think>\n" + CALL_TEXT)))
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, FILTERS_ON)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(
            model="m", max_tokens=100, messages=MESSAGES, tools=[READ_TOOL]
        )
    assert blocks(message) == [("thinking", "hm"), ("tool_use", ("Read", {"file_path": "/a.py"}))]
    assert message.stop_reason == "tool_use"


async def test_an_anthropic_provider_without_filters_is_forwarded_byte_for_byte(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Leading whitespace and markup: any filtering would show.
    reply = Reply(events=anthropic_text_stream(["\n <think>raw</think>", CALL_TEXT]))
    fake_upstream.script(reply)
    d = await start_daemon(chain_yaml(claude(fake_upstream.url)))
    body = {"model": "m", "max_tokens": 9, "stream": True, "messages": MESSAGES}
    async with aiohttp.ClientSession() as http, http.post(f"{d.url}/v1/messages", json=body) as r:
        received = await r.read()
    assert received == b"".join(
        sse_frame("anthropic", name, msgspec.json.encode(data)) for name, data in reply.events or []
    )


# OpenAI client, openai_compat provider


async def test_an_openai_client_gets_think_text_as_reasoning_content(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    chunks = ["<think>che", "ck the file</think>", "\n\nIt is ", "fine."]
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(chunks)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(model="x", messages=MESSAGES, stream=True)
        deltas = [c.choices[0].delta async for c in stream if c.choices]
    assert "".join(d.content or "" for d in deltas) == "It is fine."
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    assert reasoning == "check the file"


async def test_an_openai_client_gets_a_lifted_call_as_tool_calls(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    chunks = ["Reading.\n", CALL_TEXT[:25], CALL_TEXT[25:]]
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(chunks)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="x", messages=MESSAGES, stream=True, tools=[OPENAI_READ]
        )
        chunks_out = [c async for c in stream if c.choices]
    deltas = [c.choices[0].delta for c in chunks_out]
    assert "".join(d.content or "" for d in deltas) == "Reading."
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert [(c.index, c.function.name) for c in calls] == [(0, "Read")]
    assert json.loads(calls[0].function.arguments) == {"file_path": "/a.py"}
    assert chunks_out[-1].choices[0].finish_reason == "tool_calls"


async def test_an_openai_client_gets_a_whole_completion_filtered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    body = openai_completion("<think>hm</think>Sure.\n" + CALL_TEXT)
    fake_upstream.script(Reply(dialect="openai", json=body))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="x", messages=MESSAGES, tools=[OPENAI_READ]
        )
    choice = completion.choices[0]
    assert choice.message.content == "Sure."
    assert getattr(choice.message, "reasoning_content", None) == "hm"
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "Read"
    assert json.loads(call.function.arguments) == {"file_path": "/a.py"}


async def test_an_openai_provider_with_filters_off_is_forwarded_byte_for_byte(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = openai_text_stream(["\n <think>raw</think>", CALL_TEXT], include_usage=False)
    fake_upstream.script(Reply(dialect="openai", events=events))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, FILTERS_OFF)))
    body = {"model": "x", "stream": True, "messages": MESSAGES, "tools": [OPENAI_READ]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/chat/completions", json=body) as r,
    ):
        received = await r.read()
    frames = [sse_frame("openai", "", msgspec.json.encode(data)) for _, data in events]
    assert received == b"".join(frames) + b"data: [DONE]\n\n"
