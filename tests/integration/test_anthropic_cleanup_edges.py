"""What the daemon cleans out of an Anthropic body before an Anthropic backend
gets it, at its edges: a tool loop that began with a local model's unsigned
thinking, and bytes the first read skipped that the cleanup has to read."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.strict import anthropic_refusal
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

UNSIGNED = {"type": "thinking", "thinking": "local musing", "signature": ""}
CACHED = {"type": "ephemeral"}


def call(n: int) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{n}", "name": "Read", "input": {"p": n}}


def result(n: int) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": f"r{n}"}


def strict_anthropic(refused: list[str]) -> Any:
    """A backend refusing what Anthropic's API refuses (tests/fakes/strict.py)."""

    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        problem = anthropic_refusal(body)
        if problem is not None:
            refused.append(problem)
            return anthropic_error(400, "invalid_request_error", problem)
        if body.get("stream"):
            return Reply(events=anthropic_text_stream(["done"]))
        return Reply(json=anthropic_message("done"))

    return choose


@pytest.mark.parametrize("reminder", [False, True], ids=["plain", "system-message-after"])
async def test_every_step_of_a_tool_loop_begun_with_unsigned_thinking_goes_without_thinking(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, reminder: bool
) -> None:
    """The local model began the turn with unsigned thinking and a call;
    Claude, its thinking off for that step, answered with another call. The
    next step's assistant message starts with a tool_use: with thinking on
    again, Anthropic refuses it, so it stays off until the loop ends."""
    refused: list[str] = []
    fake_upstream.responder = strict_anthropic(refused)
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    history = [
        {"role": "user", "content": "read both"},
        {"role": "assistant", "content": [UNSIGNED, call(1)]},
        {"role": "user", "content": [result(1)]},
        {"role": "assistant", "content": [call(2)]},
        {"role": "user", "content": [result(2)]},
    ]
    if reminder:  # newer Claude Code sends system messages inside the loop
        history.append({"role": "system", "content": "<system-reminder>todo</system-reminder>"})
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        stream = client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=2048,
            messages=history,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
        async with stream as s:
            await s.get_final_message()
    assert refused == []
    assert "thinking" not in fake_upstream.requests[0].json


async def post_bytes(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/v1/messages", data=body, headers={"content-type": "application/json"}
        ) as resp,
    ):
        return resp.status, json.loads(await resp.read())


def body_with(messages: list[Any], **more: Any) -> bytes:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": messages, **more}
    return json.dumps(body, separators=(",", ":")).encode()


# Each backend's cleanup decodes a field the first read only skipped: the
# unsigned-thinking cleanup for Claude, cache_control stripping for a local
# server that refuses it, an appended system prompt.
CLEANUPS = {
    "unsigned-thinking": ("claude", "", "messages"),
    "cache-control": ("qwen3-coder", "capabilities: {cache_control: false}", "messages"),
    "append-system-prompt": ("plain", "append_system_prompt: /no_think", "system"),
}


@pytest.mark.parametrize("bad", [b'"caf\xe9 \xff"', b"1e400"], ids=["invalid-utf8", "1e400"])
@pytest.mark.parametrize("cleanup", CLEANUPS)
async def test_bytes_a_cleanup_cannot_read_are_the_clients_400_naming_the_field(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, cleanup: str, bad: bytes
) -> None:
    name, extra, field = CLEANUPS[cleanup]
    d = await start_daemon(chain_yaml(provider_yaml(name, fake_upstream.url, extra=extra)))
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [UNSIGNED, {"type": "text", "text": "a"}]},
        {"role": "user", "content": [{"type": "text", "text": "PLACE", "cache_control": CACHED}]},
    ]
    system = [{"type": "text", "text": "SYSPLACE"}]
    raw = body_with(messages, system=system)
    raw = raw.replace(b'"PLACE"' if field == "messages" else b'"SYSPLACE"', bad)
    status, error = await post_bytes(d.url, raw)
    assert status == 400, error
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert str(error["error"]["field"]).startswith(field)
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    "message",
    [
        # Role first, as Claude Code writes it: only the tail is read.
        {"role": "assistant", "content": [{"type": "text", "text": "Reading."}, call(1)]},
        # Content first: the whole history is read.
        {"content": [call(1)], "role": "assistant"},
    ],
    ids=["role-first", "content-first"],
)
async def test_a_tool_call_made_without_thinking_is_answered_with_thinking_off(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, message: dict[str, Any]
) -> None:
    """A local model that does not reason called a tool and its backend died;
    Claude gets the result with thinking enabled, which it refuses when the
    call's message does not start with thinking."""
    refused: list[str] = []
    fake_upstream.responder = strict_anthropic(refused)
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    history = [
        {"role": "user", "content": "read it"},
        message,
        {"role": "user", "content": [result(1), {"type": "text", "text": "<reminder>"}]},
    ]
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        answer = await client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=2048,
            messages=history,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
        # Adaptive thinking is left as it is: Claude may make a step without
        # thinking itself, and Anthropic takes such a message back.
        fake_upstream.responder = None
        fake_upstream.default = Reply(json=anthropic_message("done"))
        await client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=2048,
            messages=history,
            extra_body={"thinking": {"type": "adaptive"}},
        )
    assert answer.content[0].type == "text"
    assert "thinking" not in fake_upstream.requests[0].json
    assert fake_upstream.requests[1].json["thinking"] == {"type": "adaptive"}


@pytest.mark.parametrize("blank", ["", "\n\n", " \t"])
async def test_empty_text_blocks_a_local_server_wrote_are_not_sent_to_claude(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, blank: str
) -> None:
    """Claude refuses a history with an empty or blank text block ("text
    content blocks must be non-empty", "… must contain non-whitespace
    text"), which local servers' Anthropic APIs write."""
    refused: list[str] = []
    fake_upstream.responder = strict_anthropic(refused)
    d = await start_daemon(
        chain_yaml(
            provider_yaml("claude", fake_upstream.url),
            provider_yaml("qwen3-coder", fake_upstream.url),
        )
    )
    empty = {"type": "text", "text": blank}
    history = [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [empty, call(1)]},
        {"role": "user", "content": [result(1)]},
        {"role": "assistant", "content": [empty]},
        {"role": "user", "content": "and now?"},
    ]
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        await client.messages.create(model="claude", max_tokens=64, messages=history)
        # A local server gets its own model's output back as it was.
        fake_upstream.responder = None
        fake_upstream.default = Reply(json=anthropic_message("ok"))
        await client.messages.create(model="qwen3-coder", max_tokens=64, messages=history)
    assert refused == []
    to_claude, to_local = (r.json["messages"] for r in fake_upstream.requests)
    assert [m["content"] for m in to_claude[1:]] == [[call(1)], [result(1)], "and now?"]
    assert to_local == history
