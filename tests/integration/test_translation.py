"""Both SDKs across dialects: Anthropic clients on OpenAI-compatible providers and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import msgspec
import pytest
from structlog.testing import capture_logs

from coderouterd.errors import ConfigError
from coderouterd.translate.content_a2o import IMAGE_OMITTED
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_message,
    anthropic_text_stream,
    openai_completion,
    openai_error,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, o_sdk

MESSAGES = [{"role": "user", "content": "write it"}]
WRITE_TOOL = {
    "name": "Write",
    "description": "write a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
}


def oai(url: str, extra: str = "") -> str:
    return provider_yaml("local", url + "/v1", kind="openai_compat", extra=extra)


def chunk(delta: dict, finish: str | None = None) -> tuple[str, dict]:
    return (
        "",
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        },
    )


async def stream_message(url: str, **kw) -> anthropic.types.Message:
    async with (
        a_sdk(url) as client,
        client.messages.stream(model="m", max_tokens=100, messages=MESSAGES, **kw) as s,
    ):
        return await s.get_final_message()


async def test_streamed_tool_calls_become_tool_use(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(
            dialect="openai",
            events=[
                chunk({"role": "assistant", "content": "Sure."}),
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "Write", "arguments": '{"file_'},
                            }
                        ]
                    }
                ),
                chunk(
                    {
                        "tool_calls": [
                            {"index": 0, "function": {"arguments": 'path": "notes/a.txt"}'}}
                        ]
                    }
                ),
                chunk({}, "tool_calls"),
            ],
        )
    )
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    message = await stream_message(d.url, tools=[WRITE_TOOL])
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].name == "Write" and message.content[1].input == {
        "file_path": "notes/a.txt"
    }
    assert message.stop_reason == "tool_use"
    sent = fake_upstream.requests[0].json
    assert sent["tools"][0]["function"]["parameters"] == WRITE_TOOL["input_schema"]
    assert sent["stream_options"] == {"include_usage": True}


async def test_tool_call_printed_as_text_is_repaired_and_counted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    call = json.dumps({"name": "Write", "arguments": {"file_path": "notes/b.txt"}})
    fake_upstream.script(
        Reply(dialect="openai", events=openai_text_stream(["<tool_call>", call, "</tool_call>"]))
    )
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    with capture_logs() as logs:
        message = await stream_message(d.url, tools=[WRITE_TOOL])
    assert [b.type for b in message.content] == ["tool_use"]
    assert message.content[0].input == {"file_path": "notes/b.txt"}
    assert message.stop_reason == "tool_use"
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["repairs"] == 1
    local = next(p for p in d.daemon.status().providers if p.name == "local")
    assert local.tool_call_repairs == 1


async def test_think_text_becomes_a_thinking_block(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", events=openai_text_stream(["<think>hmm", "</think>", "Answer"]))
    )
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    message = await stream_message(d.url)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "hmm" and message.content[1].text == "Answer"


async def test_think_strip_filter_from_config(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", events=openai_text_stream(["<think>hmm</think>", "Answer"]))
    )
    d = await start_daemon(chain_yaml(oai(fake_upstream.url, "output_filters: {think: strip}")))
    message = await stream_message(d.url)
    assert [(b.type, b.text) for b in message.content] == [("text", "Answer")]


async def test_non_streaming_translation_and_missing_usage_estimated(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    body = openai_completion("plain answer", finish_reason="length")
    del body["usage"]
    fake_upstream.script(Reply(json=body, dialect="openai"))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            message = await client.messages.create(model="m", max_tokens=100, messages=MESSAGES)
    assert message.content[0].text == "plain answer"
    assert message.stop_reason == "max_tokens"
    assert message.usage.input_tokens > 0 and message.usage.cache_read_input_tokens == 0
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["usage_estimated"] is True


async def test_openai_error_reaches_an_anthropic_client_in_its_envelope(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(openai_error(400, "context too long", error_type="invalid_request_error"))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["message"] == "context too long"


async def test_anthropic_only_fields_dropped_and_reported_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=openai_completion("ok"), dialect="openai"))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    system = [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            await client.messages.create(
                model="m",
                max_tokens=10,
                system=system,
                messages=MESSAGES,
                metadata={"user_id": "user_acct-1234_session_abcd"},
                extra_body={"context_management": {"edits": []}},
            )
    sent = fake_upstream.requests[0].json
    assert "cache_control" not in json.dumps(sent) and "context_management" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    # Claude Code's account and session id never reaches a third-party backend.
    assert "user" not in sent and "metadata" not in sent
    assert b"acct-1234" not in fake_upstream.requests[0].body
    [degraded] = [e for e in logs if e["event"] == "capability.degraded"]
    fields = [d.split(":")[0] for d in degraded["dropped"]]
    assert sorted(fields) == ["cache_control", "context_management", "metadata"]


async def test_every_turn_of_a_conversation_is_translated_whole_though_its_history_is_remembered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=openai_completion("ok"), dialect="openai")
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    call = {"type": "tool_use", "id": "t1", "name": "Write", "input": {"file_path": "a"}}
    cached = {"type": "ephemeral"}
    turns = [
        [{"role": "user", "content": [{"type": "text", "text": "look"},
                                      {"type": "image", "source": png}]}],
        [{"role": "assistant", "content": [call]},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                       "content": "done"}]}],
        [{"role": "assistant", "content": "next?"}, {"role": "user", "content": "go on"}],
    ]  # fmt: skip
    history: list = []
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            for turn in turns:
                history += turn
                # The breakpoint on the newest message only, as Claude Code moves it.
                sent = json.loads(json.dumps(history))
                last = sent[-1]["content"]
                if isinstance(last, str):
                    sent[-1]["content"] = last = [{"type": "text", "text": last}]
                last[-1]["cache_control"] = cached
                await client.messages.create(model="m", max_tokens=10, messages=sent)
    upstream = [r.json["messages"] for r in fake_upstream.requests]
    first = [{"role": "user", "content": f"look\n{IMAGE_OMITTED}"}]
    second = [
        *first,
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "t1", "type": "function",
            "function": {"name": "Write", "arguments": '{"file_path":"a"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
    ]  # fmt: skip
    third = [
        *second,
        {"role": "assistant", "content": "next?"},
        {"role": "user", "content": "go on"},
    ]
    assert upstream == [first, second, third]
    # What a remembered message dropped is reported on every turn that sends it.
    dropped = [
        sorted(x.split(":")[0] for x in e["dropped"])
        for e in logs
        if e["event"] == "capability.degraded"
    ]
    assert dropped == [["cache_control", "image"]] * 3


async def test_openai_client_on_anthropic_provider_streaming(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["Hel", "lo"])))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="claude",
            messages=[{"role": "system", "content": "sys"}, *MESSAGES],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.prompt_tokens == 10 and chunks[-1].usage.completion_tokens == 5
    sent = fake_upstream.requests[0].json
    assert sent["system"] == "sys" and sent["max_tokens"] > 0 and sent["model"] == "claude-model"


async def test_openai_client_on_anthropic_provider_tool_use(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    message = anthropic_message("")
    message["content"] = [
        {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {"file_path": "/x"}}
    ]
    message["stop_reason"] = "tool_use"
    fake_upstream.script(Reply(json=message))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    tools = [
        {
            "type": "function",
            "function": {"name": "Write", "parameters": WRITE_TOOL["input_schema"]},
        }
    ]
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="claude", messages=MESSAGES, tools=tools
        )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "Write"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"file_path": "/x"}
    assert fake_upstream.requests[0].json["tools"][0]["input_schema"] == WRITE_TOOL["input_schema"]


HISTORY_WITH_THINKING = [
    {"role": "user", "content": "q"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "local model musing", "signature": ""},
            {"type": "thinking", "thinking": "real", "signature": "sig-abc"},
            {"type": "text", "text": "a"},
        ],
    },
    {"role": "user", "content": "next"},
]


async def test_unsigned_thinking_never_reaches_an_anthropic_upstream(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            await client.messages.create(model="m", max_tokens=10, messages=HISTORY_WITH_THINKING)
            await client.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    blocks = fake_upstream.requests[0].json["messages"][1]["content"]
    assert [b.get("signature") for b in blocks if b["type"] == "thinking"] == ["sig-abc"]
    # Requests with nothing unsigned stay bytes: the history is forwarded as sent.
    decode = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
    assert (
        bytes(decode(fake_upstream.requests[1].body)["messages"])
        == json.dumps(MESSAGES, separators=(",", ":")).encode()
    )
    assert [e["dropped"] for e in logs if e["event"] == "capability.degraded"] == [
        [
            "content.thinking: unsigned thinking from another provider is not sent to an Anthropic upstream"
        ]
    ]


async def test_each_turn_of_a_conversation_loses_its_unsigned_thinking_though_read_through_the_last(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    signed = {"type": "thinking", "thinking": "real", "signature": "sig-abc"}
    unsigned = {"type": "thinking", "thinking": "local", "signature": ""}
    turns = [
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": [signed]}],
        [{"role": "user", "content": "more"}, {"role": "assistant", "content": [unsigned, signed]}],
        [{"role": "user", "content": "again"}],
    ]
    history: list = []
    async with a_sdk(d.url) as client:
        for turn in turns:
            history += turn
            await client.messages.create(model="m", max_tokens=10, messages=history)
    assert d.daemon.bodies.reused == 2
    sent = [r.json["messages"] for r in fake_upstream.requests]
    assert sent[0] == turns[0]
    assert sent[1] == [*turns[0], turns[1][0], {"role": "assistant", "content": [signed]}]
    assert sent[2] == [*sent[1], *turns[2]]


async def test_a_tool_loop_begun_with_unsigned_thinking_goes_on_without_thinking(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # A local model began the turn (its thinking unsigned) and called a tool;
    # the tool's result now goes to an Anthropic upstream, with thinking on
    # as Claude Code sends it. Anthropic would answer 400 to an assistant
    # message of the loop that does not start with signed thinking.
    fake_upstream.default = Reply(json=anthropic_message("done"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    unsigned = {"type": "thinking", "thinking": "local", "signature": ""}
    call = {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {"file_path": "/x"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}
    loop = [
        {"role": "user", "content": "write it"},
        {"role": "assistant", "content": [unsigned, call]},
        {"role": "user", "content": [result]},
    ]
    edits = [
        {"type": "clear_thinking_20251015", "keep": "all"},
        {"type": "clear_tool_uses_20250919"},
    ]

    async def send(url: str, history: list[Any]) -> None:
        async with a_sdk(url) as client:
            await client.messages.create(
                model="m",
                max_tokens=2048,
                messages=history,
                thinking={"type": "enabled", "budget_tokens": 1024},
                extra_body={"context_management": {"edits": edits}},
            )

    with capture_logs() as logs:
        await send(d.url, loop)
        await send(d.url, [*loop, {"role": "assistant", "content": "done"}, USER_NEXT])
    first, second = (r.json for r in fake_upstream.requests)
    assert "thinking" not in first
    assert first["context_management"] == {"edits": edits[1:]}
    assert first["messages"][1] == {"role": "assistant", "content": [call]}
    # Once the user speaks again a new turn begins: thinking is on for it.
    assert second["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert second["context_management"] == {"edits": edits}
    dropped = [e["dropped"] for e in logs if e["event"] == "capability.degraded"]
    assert [len(d) for d in dropped] == [3, 1]
    assert dropped[0][1].startswith("thinking: off for this request")
    assert dropped[0][2].startswith("context_management.edits:")
    # A local server's Anthropic API checks no signatures: it gets the
    # history as sent, its model's own thinking included, and thinks on.
    fake_upstream.requests.clear()
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url)))
    with capture_logs() as logs:
        await send(d.url, loop)
    (local,) = (r.json for r in fake_upstream.requests)
    assert local["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert local["context_management"] == {"edits": edits}
    assert local["messages"] == loop
    assert not [e for e in logs if e["event"] == "capability.degraded"]


USER_NEXT = {"role": "user", "content": "thanks, now the tests"}


async def test_an_openai_compat_upstream_gets_none_of_the_anthropic_clients_headers(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=openai_completion("ok"), dialect="openai"))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        await client.messages.create(
            model="m",
            max_tokens=10,
            messages=MESSAGES,
            extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14", "x-app": "cli"},
        )
    sent = {k.lower() for k in fake_upstream.requests[0].headers}
    assert not {k for k in sent if k.startswith(("anthropic-", "x-api-key", "x-app"))}
    # The client's key is not forwarded unless the provider says so.
    assert "authorization" not in sent


async def test_user_capabilities_file_wins(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    rules = tmp_path / "caps.yaml"
    rules.write_text('- kind: openai_compat\n  model: "local-*"\n  max_output_tokens: 64\n')
    fake_upstream.script(Reply(json=openai_completion("ok"), dialect="openai"))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url), top=f"capabilities_file: {rules}\n"))
    async with a_sdk(d.url) as client:
        await client.messages.create(model="m", max_tokens=5000, messages=MESSAGES)
    assert fake_upstream.requests[0].json["max_tokens"] == 64
    rules.write_text("- kind: openai_compat\n  model: x\n  bogus: 1\n")
    with pytest.raises(ConfigError) as info:
        await start_daemon(chain_yaml(oai(fake_upstream.url), top=f"capabilities_file: {rules}\n"))
    assert f"{rules}:3" in str(info.value) and "bogus" in str(info.value)
