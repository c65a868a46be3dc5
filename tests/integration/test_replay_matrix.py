"""`coderouterd replay ID --diff` of a tool call with thinking, in every
pairing of client dialect and provider kind, streamed or not: the replay
assembles the same answer as the recording, and the diff holds nothing but
latency."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import Event
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]
PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}
TOOLS = {
    "anthropic": [{"name": "Read", "description": "r", "input_schema": SCHEMA}],
    "openai": [
        {"type": "function", "function": {"name": "Read", "description": "r", "parameters": SCHEMA}}
    ],
}
ARGS = '{"path": "a.py"}'


def _block(index: int, block: dict[str, Any], *deltas: dict[str, Any]) -> list[Event]:
    return [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}),
        *(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas),
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]  # fmt: skip


def _anthropic_stream() -> list[Event]:
    start = {
        "id": "m", "type": "message", "role": "assistant", "content": [], "model": "x",
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }  # fmt: skip
    return [
        ("message_start", {"type": "message_start", "message": start}),
        *_block(0, {"type": "thinking", "thinking": "", "signature": ""},
                {"type": "thinking_delta", "thinking": "hmm"}),
        *_block(1, {"type": "text", "text": ""}, {"type": "text_delta", "text": "I will read"}),
        *_block(2, {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}},
                {"type": "input_json_delta", "partial_json": '{"path": '},
                {"type": "input_json_delta", "partial_json": '"a.py"}'}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip


def _anthropic_message() -> dict[str, Any]:
    return {
        "id": "m", "type": "message", "role": "assistant", "model": "x",
        "stop_reason": "tool_use", "stop_sequence": None,
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "I will read"},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}},
        ],
        "usage": {"input_tokens": 10, "output_tokens": 7,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }  # fmt: skip


def _chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return ("", {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "x",
                 "choices": [choice]})  # fmt: skip


def _openai_stream() -> list[Event]:
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "Read", "arguments": ""}}  # fmt: skip
    usage = {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
    return [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "hmm"}),
        _chunk({"content": "I will read"}),
        _chunk({"tool_calls": [call]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ARGS}}]}),
        _chunk({}, "tool_calls"),
        ("", {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "x",
              "choices": [], "usage": usage}),
    ]  # fmt: skip


def _openai_completion() -> dict[str, Any]:
    message = {
        "role": "assistant", "content": "I will read", "reasoning_content": "hmm",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "Read", "arguments": ARGS}}],
    }  # fmt: skip
    return {
        "id": "c", "object": "chat.completion", "created": 1, "model": "x",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
    }  # fmt: skip


def _answer(kind: str, stream: bool) -> Reply:
    if kind == "anthropic":
        return Reply(events=_anthropic_stream()) if stream else Reply(json=_anthropic_message())
    if stream:
        return Reply(events=_openai_stream(), dialect="openai")
    return Reply(json=_openai_completion(), dialect="openai")


async def _send(d: ServeProcess, dialect: str, body: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(d.url + PATHS[dialect], json=body) as resp,
    ):
        await resp.read()
        assert resp.status == 200
        return resp.headers["x-request-id"]


@pytest.mark.parametrize("client", ["anthropic", "openai"])
@pytest.mark.parametrize("kind", ["anthropic", "openai_compat"])
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_replayed_tool_call_with_thinking_diffs_clean_in_every_pairing(
    serve_process: StartServe, fake_upstream: FakeUpstream, client: str, kind: str, stream: bool
) -> None:
    fake_upstream.default = _answer(kind, stream)
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url, kind=kind)))
    body: dict[str, Any] = {
        "model": "m", "max_tokens": 50, "messages": MESSAGES, "stream": stream,
        "tools": TOOLS[client],
    }  # fmt: skip
    if client == "openai" and stream:
        body["stream_options"] = {"include_usage": True}
    rid = await _send(d, client, body)
    await wait_committed(d, 2)
    run = await run_cli(
        "replay", rid, "--diff", "--json", "--socket", str(d.socket_path), *cli_args(d),
        env=child_env(d.root),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    reply = msgspec.json.decode(run.stdout)
    assert [c for c in reply["changes"] if c["field"] != "latency_ms"] == []
    r = reply["response"]
    assert r["text"] == "I will read", r
    assert r["tool_calls"] == [{"name": "Read", "input": {"path": "a.py"}}], r
    assert r["thinking"] == "hmm", r
    assert r["stop_reason"] == "tool_use", r
    assert r["usage"].get("output_tokens") == 7, r
