"""JSON nested deeper than the decoder follows, in what a model writes (a
call printed as text, or the arguments of its own tool call), is answered:
left as text or sent as `{"_raw": …}`, never taken for a broken provider.
A prompt injection in a file the model read can make it print that."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
A_TOOLS: list[Any] = [
    {"name": "Write", "description": "w", "input_schema": {"type": "object"}},
    {"name": "Read", "description": "r", "input_schema": {"type": "object"}},
]
O_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
    for t in A_TOOLS
]
DEEP = "[" * 3000 + "]" * 3000
DEEP_ARGS = '{"data": ' + DEEP + "}"
PRINTED = "Here.\n<tool_call>" + '{"name": "Write", "arguments": ' + DEEP_ARGS + "}</tool_call>"
A_KW: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": A_TOOLS}


def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return ("", {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})


def native_call(arguments: str) -> dict[str, Any]:
    body = openai_completion("", finish_reason="tool_calls")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "Write", "arguments": arguments},
    }
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    return body


# Ollama's way: whole calls, each in one chunk, all at index 0 without ids;
# the second call's name makes the first one's arguments be checked for
# being whole JSON.
OLLAMA_CALLS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"tool_calls": [{"index": 0, "function": {"name": "Write", "arguments": DEEP_ARGS}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"name": "Read", "arguments": "{}"}}]}),
    chunk({}, "tool_calls"),
]


async def test_a_printed_call_nested_too_deep_stays_text_for_either_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(PRINTED)),
        Reply(dialect="openai", json=openai_completion(PRINTED)),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW)
    assert [b.type for b in message.content] == ["text"]
    assert DEEP in message.content[0].text  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    async with o_sdk(d.url) as oclient:
        completion = await oclient.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS
        )
    choice = completion.choices[0]
    assert not choice.message.tool_calls
    assert DEEP in (choice.message.content or "")
    assert choice.finish_reason == "stop"


async def test_a_streamed_printed_call_nested_too_deep_ends_cleanly_as_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    pieces = [PRINTED[i : i + 500] for i in range(0, len(PRINTED), 500)]
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(pieces)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client, client.messages.stream(**A_KW) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["text"]
    assert DEEP in message.content[0].text  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


async def test_a_native_call_with_arguments_nested_too_deep_reaches_an_anthropic_client_raw(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", json=native_call(DEEP_ARGS)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW)
    assert [(b.type, b.input) for b in message.content] == [  # type: ignore[union-attr]
        ("tool_use", {"_raw": DEEP_ARGS})
    ]
    assert message.stop_reason == "tool_use"


async def test_a_streamed_native_call_with_arguments_nested_too_deep_arrives_raw(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    call = {"index": 0, "id": "call_1", "function": {"name": "Write", "arguments": DEEP_ARGS}}
    events = [chunk({"role": "assistant"}), chunk({"tool_calls": [call]}), chunk({}, "tool_calls")]
    fake_upstream.script(Reply(dialect="openai", events=events))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client, client.messages.stream(**A_KW) as stream:
        message = await stream.get_final_message()
    assert [(b.type, b.input) for b in message.content] == [  # type: ignore[union-attr]
        ("tool_use", {"_raw": DEEP_ARGS})
    ]


async def test_calls_at_a_reused_index_after_arguments_nested_too_deep_reach_an_anthropic_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Too deep to tell whether they are whole, the first call's arguments
    are taken as going on: the stream still ends cleanly with the call."""
    fake_upstream.script(Reply(dialect="openai", events=OLLAMA_CALLS))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client, client.messages.stream(**A_KW) as stream:
        message = await stream.get_final_message()
    assert [(b.type, b.name) for b in message.content] == [("tool_use", "Write")]  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"


async def test_calls_at_a_reused_index_after_arguments_nested_too_deep_reach_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", events=OLLAMA_CALLS))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS, stream=True
        )
        chunks = [c async for c in stream]
    indexes = {
        call.index for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []
    }
    assert indexes == {0}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
