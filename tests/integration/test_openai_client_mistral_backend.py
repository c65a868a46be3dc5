"""An OpenAI client's history on a Mistral-family openai_compat backend, in
the tool call ids and role order mistral_common takes.

mistral_common (Mistral's API, vLLM's mistral tokenizer mode, NIM) refuses
with a 400 a tool call id that is not 9 letters or digits, a `user` or
`system` message after a `tool` one, a `system` after an `assistant`, and a
last `assistant` message not marked `prefix: true`. An OpenAI client's
history has them in ordinary use: the `call_…` ids another provider of its
chain gave, text sent after the tool results, a system message between
turns, a prefill. The fake backend checks what mistral_common checks; any
other backend gets the client's messages as it sent them, byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import openai
import pytest

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.clients import local, o_sdk
from tests.integration.test_a2o_mistral_role_order import DEVSTRAL, on_mistral
from tests.integration.test_mistral_tool_ids import MISTRAL_ID
from tests.integration.test_mistral_tool_ids import mistral_refusal as id_refusal

CALL_ID = "call_abc123def456"
READ_CALL: dict[str, Any] = {
    "id": CALL_ID,
    "type": "function",
    "function": {"name": "Read", "arguments": json.dumps({"path": "/a"})},
}
LOOP: list[Any] = [
    {"role": "user", "content": "what is in /a?"},
    {"role": "assistant", "content": None, "tool_calls": [READ_CALL]},
    {"role": "tool", "tool_call_id": CALL_ID, "content": "hello"},
]
READ: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


async def on_strict_mistral(start_daemon: StartDaemon, fake: FakeUpstream) -> str:
    """A daemon whose one provider serves Devstral on a backend that checks
    the roles' order and the tool call ids as mistral_common does; its URL."""
    url = await on_mistral(start_daemon, fake, DEVSTRAL)
    by_order = fake.responder
    assert by_order is not None

    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        problem = id_refusal(body)
        if problem is not None:
            return Reply(status=400, json={"object": "error", "message": problem}, dialect="openai")
        answer = by_order(req)
        if answer.status == 200 and body.get("stream"):
            return Reply(events=openai_text_stream(["done"]), dialect="openai")
        return answer

    fake.responder = choose
    return url


async def ask(url: str, messages: list[Any], *, stream: bool = False) -> str:
    async with o_sdk(url) as client:
        try:
            if stream:
                chunks = await client.chat.completions.create(
                    model="m", max_tokens=100, messages=messages, tools=READ, stream=True
                )
                return "".join(
                    [c.choices[0].delta.content or "" async for c in chunks if c.choices]
                )
            answer = await client.chat.completions.create(
                model="m", max_tokens=100, messages=messages, tools=READ
            )
        except openai.BadRequestError as exc:
            pytest.fail(f"the backend refused the history: {exc.message}")
    return answer.choices[0].message.content or ""


def sent(fake: FakeUpstream) -> list[dict[str, Any]]:
    body = fake.requests[-1].json
    assert isinstance(body, dict)
    return list(body["messages"])


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_openai_style_call_ids_reach_mistral_as_nine_alphanumerics_alike(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    url = await on_strict_mistral(start_daemon, fake_upstream)
    assert await ask(url, LOOP, stream=stream) == "done"
    _, assistant, tool = sent(fake_upstream)
    [call] = assistant["tool_calls"]
    assert MISTRAL_ID.fullmatch(call["id"])
    assert tool["tool_call_id"] == call["id"]
    assert call["function"] == READ_CALL["function"]


async def test_text_after_tool_results_reaches_mistral_in_the_last_tool_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_strict_mistral(start_daemon, fake_upstream)
    history = [*LOOP, {"role": "user", "content": "and keep it short"}]
    assert await ask(url, history) == "done"
    assert [m["role"] for m in sent(fake_upstream)] == ["user", "assistant", "tool"]
    assert sent(fake_upstream)[-1]["content"] == "hello\n\n[user message]\nand keep it short"


async def test_text_after_a_tool_result_of_text_parts_reaches_mistral_as_one_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_strict_mistral(start_daemon, fake_upstream)
    parts = [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]
    history = [*LOOP[:2], {**LOOP[2], "content": parts}, {"role": "user", "content": "why?"}]
    assert await ask(url, history) == "done"
    assert sent(fake_upstream)[-1]["content"] == "line 1\nline 2\n\n[user message]\nwhy?"


async def test_a_system_message_after_an_answer_reaches_mistral_as_a_user_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_strict_mistral(start_daemon, fake_upstream)
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Context left: 40%."},
        {"role": "user", "content": "go on"},
    ]
    assert await ask(url, history) == "done"
    messages = sent(fake_upstream)
    assert messages[0] == history[0]
    assert messages[3] == {"role": "user", "content": "[system message]\nContext left: 40%."}


async def test_a_prefill_reaches_mistral_marked_as_the_prefix_of_the_answer(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_strict_mistral(start_daemon, fake_upstream)
    prefill = [
        {"role": "user", "content": "Give me a JSON object with a key a."},
        {"role": "assistant", "content": "{"},
    ]
    await ask(url, prefill)
    assert sent(fake_upstream)[-1] == {"role": "assistant", "content": "{", "prefix": True}


def messages_of(req: Recorded) -> bytes:
    return bytes(msgspec.json.decode(req.body, type=dict[str, msgspec.Raw])["messages"])


async def as_sent(url: str, fake: FakeUpstream, messages: list[Any]) -> tuple[bytes, bytes]:
    """The `messages` of the body the SDK sends (to the fake itself), and of
    the one the fake gets from the daemon for the same call."""
    await ask(fake.url, messages)
    await ask(url, messages)
    direct, through = fake.requests[-2:]
    return messages_of(direct), messages_of(through)


async def test_other_backends_get_an_openai_clients_messages_as_sent(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=openai_completion("done"), dialect="openai")
    d = await start_daemon(chain_yaml(local(fake_upstream.url).replace("local-model", "qwen3:32b")))
    history = [*LOOP, {"role": "user", "content": "and?"}, {"role": "system", "content": "s"}]
    sdk, daemon = await as_sent(d.url, fake_upstream, history)
    assert daemon == sdk
