"""Output filters on an openai_compat passthrough, per choice: with `n` > 1
every choice is a text of its own, filtered apart, and none is lost; the
logprobs of a chunk the filters split reach the client once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
CALL_TEXT = '<tool_call>{"name": "Read", "arguments": {"file_path": "/a.py"}}</tool_call>'
READ_TOOL = {
    "type": "function",
    "function": {
        "name": "Read",
        "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}},
    },
}


def local(url: str) -> str:
    # Output filters are on by default for openai_compat providers.
    return provider_yaml("local", url + "/v1", kind="openai_compat")


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=10)


def chunk(*choices: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return "", {**body, "choices": list(choices)}


def choice(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> Any:
    return {"index": index, "delta": delta, "finish_reason": finish, **extra}


def logprobs(*tokens: str) -> dict[str, Any]:
    entries = [{"token": t, "logprob": -1.0, "bytes": None, "top_logprobs": []} for t in tokens]
    return {"content": entries, "refusal": None}


async def streamed(url: str, **kw: Any) -> list[ChatCompletionChunk]:
    async with sdk(url) as client:
        stream = await client.chat.completions.create(
            model="x", messages=MESSAGES, stream=True, **kw
        )
        return [c async for c in stream]


def texts(chunks: Iterable[ChatCompletionChunk]) -> dict[int, tuple[str, str]]:
    """Each choice's (content, reasoning_content), as a client assembles them."""
    out: dict[int, tuple[str, str]] = {}
    for c in chunks:
        for ch in c.choices:
            content, reasoning = out.get(ch.index, ("", ""))
            said = getattr(ch.delta, "reasoning_content", None) or ""
            out[ch.index] = (content + (ch.delta.content or ""), reasoning + said)
    return out


async def test_a_choice_opening_think_leaves_the_other_choices_text_alone(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = [
        chunk(
            choice(0, {"role": "assistant", "content": ""}),
            choice(1, {"role": "assistant", "content": ""}),
        ),
        chunk(choice(1, {"content": "<think>hmm"})),
        chunk(choice(0, {"content": "Hello"})),
        chunk(choice(1, {"content": "</think>World"})),
        chunk(choice(0, {"content": " there"})),
        chunk(choice(0, {}, "stop")),
        chunk(choice(1, {}, "stop")),
    ]
    fake_upstream.script(Reply(events=events, dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    got = texts(await streamed(d.url, n=2))
    assert got == {0: ("Hello there", ""), 1: ("World", "hmm")}


async def test_a_chunk_of_two_choices_the_filters_change_keeps_both(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = [
        chunk(
            choice(0, {"role": "assistant", "content": "A<|im_end|>"}),
            choice(1, {"role": "assistant", "content": "<think>b</think>B"}),
        ),
        chunk(choice(0, {}, "stop"), choice(1, {}, "stop")),
    ]
    fake_upstream.script(Reply(events=events, dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    chunks = await streamed(d.url, n=2)
    assert texts(chunks) == {0: ("A", ""), 1: ("B", "b")}
    finishes = {ch.index: ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason}
    assert finishes == {0: "stop", 1: "stop"}


async def test_each_choice_of_a_whole_completion_is_filtered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    body = openai_completion("Hello<|im_end|>")
    second = {**body["choices"][0], "index": 1}
    second["message"] = {"role": "assistant", "content": "<think>hm</think>Sure.\n" + CALL_TEXT}
    body["choices"].append(second)
    fake_upstream.script(Reply(json=body, dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="x", messages=MESSAGES, n=2, tools=[READ_TOOL]
        )
    first, other = completion.choices
    assert (first.message.content, first.finish_reason) == ("Hello", "stop")
    assert not first.message.tool_calls
    assert (other.message.content, other.finish_reason) == ("Sure.", "tool_calls")
    assert getattr(other.message, "reasoning_content", None) == "hm"
    [call] = other.message.tool_calls or []
    assert json.loads(call.function.arguments) == {"file_path": "/a.py"}


async def test_logprobs_reach_the_client_once_when_the_filters_split_or_hold_a_chunk(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = [
        # Split: the role goes first, the held `<|im_` later.
        chunk(choice(0, {"role": "assistant", "content": "x <|im_"}, logprobs=logprobs("x"))),
        # Held whole (the marker is stripped): nothing to send it with yet.
        chunk(choice(0, {"content": "end|>"}, logprobs=logprobs("<|im_end|>"))),
        chunk(choice(0, {"content": " y"}, logprobs=logprobs(" y"))),
        chunk(choice(0, {}, "stop", logprobs=None)),
    ]
    fake_upstream.script(Reply(events=events, dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    chunks = await streamed(d.url, logprobs=True)
    tokens = [
        t.token
        for c in chunks
        for ch in c.choices
        if ch.logprobs is not None
        for t in ch.logprobs.content or []
    ]
    assert tokens == ["x", "<|im_end|>", " y"]
    assert texts(chunks) == {0: ("x  y", "")}


async def test_a_call_lifted_from_the_chunk_with_the_finish_reason_makes_it_tool_calls(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = [
        chunk(choice(0, {"role": "assistant", "content": ""})),
        chunk(choice(0, {"content": CALL_TEXT}, "stop")),
    ]
    fake_upstream.script(Reply(events=events, dialect="openai"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    chunks = await streamed(d.url, tools=[READ_TOOL])
    calls = [call for c in chunks for ch in c.choices for call in ch.delta.tool_calls or []]
    assert [call.function.name for call in calls if call.function] == ["Read"]
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == [
        "tool_calls"
    ]


async def test_text_between_a_calls_fragments_keeps_its_spaces(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The filters release what they hold before the upstream's own call
    fragments, without starting the text over (which drops leading spaces)."""

    def call(args: str, **first: Any) -> dict[str, Any]:
        return {"index": 0, **first, "function": {"arguments": args, **first.pop("fn", {})}}

    events = [
        chunk(choice(0, {"role": "assistant", "content": "I am reading"})),
        chunk(choice(0, {"tool_calls": [call('{"file_', id="c1", fn={"name": "Read"})]})),
        chunk(choice(0, {"content": " the file"})),
        chunk(choice(0, {"tool_calls": [call('path": "/a"}')]})),
        chunk(choice(0, {"content": " now."})),
        chunk(choice(0, {}, "tool_calls")),
    ]
    fake_upstream.script(Reply(dialect="openai", events=events))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    got = await streamed(d.url, tools=[READ_TOOL])
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert text == "I am reading the file now."
