"""`coderouterd replay` of a request from an OpenAI client using the legacy
`functions`: the call it got back as `function_call` is a tool call, shown
and diffed like one, streamed or not."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_usage
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, wait_committed

Event = tuple[str, dict[str, Any]]

FUNCTIONS = [
    {
        "name": "read",
        "description": "read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


def _tool_use_message(path: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": path}}],
        "model": "fake-model",
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": anthropic_usage(10, 5),
    }


def _tool_use_stream(path: str) -> list[Event]:
    """The call's arguments in two deltas, so the client gets them in pieces."""
    start = {**_tool_use_message(path), "content": [], "stop_reason": None}
    arguments = json.dumps({"path": path})
    block = {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        *[
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                },
            )
            for piece in (arguments[:5], arguments[5:])
        ],
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def _answer(path: str, stream: bool) -> Reply:
    return Reply(events=_tool_use_stream(path)) if stream else Reply(json=_tool_use_message(path))


async def _replay(d: ServeProcess, rid: str, *options: str) -> str:
    run = await run_cli(
        "replay", rid, "--diff", *options, "--socket", str(d.socket_path), *cli_args(d),
        env=child_env(d.root),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_replay_shows_and_diffs_a_legacy_function_call(
    serve_process: StartServe, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """Recorded: the call reads a.py; replayed: b.py. The client got each as
    `function_call` (streamed: its name, then its arguments in pieces)."""
    fake_upstream.script(_answer("a.py", stream), _answer("b.py", stream), _answer("b.py", stream))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "read a file"}],
        "functions": FUNCTIONS,
        "stream": stream,
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(d.url + "/v1/chat/completions", json=body) as resp,
    ):
        raw = await resp.read()
        rid = resp.headers["x-request-id"]
    assert resp.status == 200
    # The premise: the client got a legacy call, and no tool_calls.
    assert b'"function_call"' in raw and b'"tool_calls"' not in raw
    await wait_committed(d, 2)
    reply = msgspec.json.decode(await _replay(d, rid, "--json"))
    assert reply["status"] == 200
    assert reply["response"]["stop_reason"] == "tool_use"
    assert reply["response"]["tool_calls"] == [{"name": "read", "input": {"path": "b.py"}}]
    changes = {c["field"]: (c["before"], c["after"]) for c in reply["changes"]}
    changes.pop("latency_ms", None)
    assert changes == {"tool_calls[0].input": ({"path": "a.py"}, {"path": "b.py"})}
    text = await _replay(d, rid)
    assert 'tool call read: {"path": "b.py"}' in text
