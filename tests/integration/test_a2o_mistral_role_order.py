"""An Anthropic client's turns on a Mistral-family openai_compat backend, in
the role order mistral_common takes.

mistral_common (Mistral's API, vLLM's mistral tokenizer mode for Devstral
and Mistral Small) refuses with a 400 a `user` or `system` message after a
`tool` one, a `system` after an `assistant`, and a last `assistant` message
not marked `prefix: true`. Claude Code's ordinary tool-loop turns make those
orders: text beside its tool results, a tool result's images, a system
message between calls and results, a prefill. The fake backend below checks
what mistral_common checks.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import anthropic
import pytest

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.clients import a_sdk, local

# mistral_common's MistralRequestValidator._validate_message_order.
_AFTER = {
    "system": {"user", "assistant", "system"},
    "user": {"assistant", "system", "user"},
    "assistant": {"assistant", "user", "tool"},
    "tool": {"assistant", "tool"},
}
READ: dict[str, Any] = {
    "name": "Read",
    "description": "read a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
}
REMINDER = {"type": "text", "text": "<system-reminder>\nThe user opened /a.\n</system-reminder>"}
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6364f8cf500000038601805a347d6b"
        "0000000049454e44ae426082"
    )
).decode()
DEVSTRAL = "mistralai/Devstral-Small-2507"


def mistral_refusal(body: dict[str, Any]) -> str | None:
    """What mistral_common answers to the order of these messages, if anything."""
    messages = body.get("messages") or []
    for before, m in itertools.pairwise(messages):
        if m.get("role") not in _AFTER.get(before.get("role"), set()):
            return f"Unexpected role '{m.get('role')}' after role '{before.get('role')}'"
    last = messages[-1] if messages else {}
    if len(messages) > 1 and last.get("role") == "assistant" and last.get("prefix") is not True:
        return "Expected last role User or Tool (or Assistant with prefix True), got assistant"
    return None


async def on_mistral(start_daemon: StartDaemon, fake: FakeUpstream, model: str) -> str:
    """A daemon whose one provider serves `model` on a backend that checks
    the order of roles as mistral_common does; its URL."""

    def choose(req: Recorded) -> Reply:
        problem = mistral_refusal(req.json or {})
        if problem is not None:
            error = {"object": "error", "message": problem, "type": "invalid_request_message_order"}
            return Reply(status=400, json=error, dialect="openai")
        return Reply(json=openai_completion("done"), dialect="openai")

    fake.responder = choose
    d = await start_daemon(chain_yaml(local(fake.url).replace("local-model", model)))
    return d.url


def tool_loop(result: Any, *beside: dict[str, Any]) -> list[Any]:
    """Claude Code's turn: a question, the Read call, its result and what it put beside it."""
    call = {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/a"}}
    answer = {"type": "tool_result", "tool_use_id": "toolu_01", "content": result}
    return [
        {"role": "user", "content": "what is in /a?"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [answer, *beside]},
    ]


async def ask(url: str, messages: list[Any]) -> str:
    async with a_sdk(url) as client:
        try:
            answer = await client.messages.create(
                model="m", max_tokens=100, messages=messages, tools=[READ]
            )
        except anthropic.BadRequestError as exc:
            pytest.fail(f"the backend refused the order: {exc.message}")
    return "".join(b.text for b in answer.content if b.type == "text")


def sent(fake: FakeUpstream) -> list[dict[str, Any]]:
    body = fake.requests[-1].json
    assert isinstance(body, dict)
    return list(body["messages"])


async def test_text_beside_tool_results_reaches_mistral_in_the_last_tool_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_mistral(start_daemon, fake_upstream, DEVSTRAL)
    turn = tool_loop("hello", REMINDER)
    assert await ask(url, turn) == "done"
    *_, tool = sent(fake_upstream)
    assert tool["role"] == "tool"
    assert tool["content"] == f"hello\n\n[user message]\n{REMINDER['text']}"
    # The next turn of the loop, its history taken from the one before, goes too.
    turn += [
        {"role": "assistant", "content": "It says hello."},
        {"role": "user", "content": "thanks"},
    ]
    assert await ask(url, turn) == "done"
    assert [m["role"] for m in sent(fake_upstream)] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]


async def test_a_tool_results_image_reaches_a_mistral_vision_model(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A tool message carries text only, and no user message may follow it:
    a short assistant message says where the images are, and they follow."""
    model = "mistralai/Mistral-Small-3.1-24B-Instruct-2503"
    url = await on_mistral(start_daemon, fake_upstream, model)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert await ask(url, tool_loop([image])) == "done"
    *_, tool, bridge, user = sent(fake_upstream)
    assert (tool["role"], bridge["role"], user["role"]) == ("tool", "assistant", "user")
    assert bridge["content"]
    urls = [p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url"]
    assert urls == [f"data:image/png;base64,{PNG}"]


async def test_a_mid_conversation_system_message_reaches_mistral_in_the_tool_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_mistral(start_daemon, fake_upstream, DEVSTRAL)
    history = tool_loop("hello")
    history.insert(2, {"role": "system", "content": "Context left: 40%."})
    assert await ask(url, history) == "done"
    *_, tool = sent(fake_upstream)
    assert tool["content"] == "hello\n\n[system message]\nContext left: 40%."


async def test_a_system_message_after_an_answer_reaches_mistral_as_a_user_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_mistral(start_daemon, fake_upstream, DEVSTRAL)
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Context left: 40%."},
        {"role": "user", "content": "go on"},
    ]
    assert await ask(url, history) == "done"
    assert sent(fake_upstream)[2] == {
        "role": "user",
        "content": "[system message]\nContext left: 40%.",
    }


async def test_a_prefill_reaches_mistral_marked_as_the_prefix_of_the_answer(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_mistral(start_daemon, fake_upstream, "mistral-small-latest")
    prefill = [
        {"role": "user", "content": "Give me a JSON object with a key a."},
        {"role": "assistant", "content": "{"},
    ]
    await ask(url, prefill)
    assert sent(fake_upstream)[-1] == {"role": "assistant", "content": "{", "prefix": True}
