"""An Anthropic client's tool loop on a Mistral-family backend (Devstral on
vLLM with the mistral tokenizer, Mistral's API), which refuses any tool call
id that is not exactly 9 letters or digits.

The daemon names the calls it hands an Anthropic client `toolu_<request
id>_<n>`, and the client sends them back in its history: towards such a
backend they go as 9 alphanumerics, the same for a call and its result, or
the second turn of every tool loop is a 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.clients import a_sdk as sdk

MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")
SCHEMA = {"type": "object", "properties": {"file_path": {"type": "string"}}}
TOOLS: list[Any] = [{"name": "Read", "description": "read a file", "input_schema": SCHEMA}]
ASK: list[Any] = [{"role": "user", "content": "What is in /a.txt?"}]
FINAL = "It says hello."


def mistral_refusal(body: dict[str, Any]) -> str | None:
    """What mistral_common answers to a history whose tool call ids are not 9 alphanumerics."""
    for m in body.get("messages", []):
        ids = [c.get("id") for c in m.get("tool_calls") or []]
        if m.get("role") == "tool":
            ids.append(m.get("tool_call_id"))
        for i in ids:
            if not isinstance(i, str) or not MISTRAL_ID.fullmatch(i):
                return f"Tool call id was {i} but must be a-z, A-Z, 0-9, with a length of 9."
    return None


def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    envelope = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return "", {**envelope, "choices": [choice]}


def read_call(stream: bool) -> Reply:
    """Devstral calling Read, with an id of Mistral's own."""
    arguments = json.dumps({"file_path": "/a.txt"})
    call = {
        "id": "Ab3dE6gH9",
        "type": "function",
        "function": {"name": "Read", "arguments": arguments},
    }
    if not stream:
        body = openai_completion("", finish_reason="tool_calls")
        body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
        return Reply(json=body, dialect="openai")
    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [{"index": 0, **call}]}),
    ]
    return Reply(events=[*events, chunk({}, "tool_calls")], dialect="openai")


def mistral_backend(fake: FakeUpstream, refused: list[str]) -> None:
    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        problem = mistral_refusal(body)
        if problem is not None:
            refused.append(problem)
            error = {"object": "error", "message": problem, "type": "BadRequestError",
                     "param": None, "code": 400}  # fmt: skip
            return Reply(status=400, json=error, dialect="openai")
        stream = bool(body.get("stream"))
        if any(m.get("role") == "tool" for m in body.get("messages", [])):
            if stream:
                return Reply(events=openai_text_stream([FINAL]), dialect="openai")
            return Reply(json=openai_completion(FINAL), dialect="openai")
        return read_call(stream)

    fake.responder = choose


def backend(url: str, model: str, extra: str = "") -> str:
    block = provider_yaml("local", url + "/v1", kind="openai_compat", extra=extra)
    return block.replace("local-model", model)


async def ask(client: anthropic.AsyncAnthropic, messages: list[Any], stream: bool) -> Any:
    if not stream:
        return await client.messages.create(
            model="m", max_tokens=100, messages=messages, tools=TOOLS
        )
    async with client.messages.stream(
        model="m", max_tokens=100, messages=messages, tools=TOOLS
    ) as s:
        return await s.get_final_message()


async def tool_loop(url: str, *, stream: bool) -> Any:
    """Claude Code's loop: the call, its result sent back, the answer."""
    async with sdk(url) as client:
        first = await ask(client, ASK, stream)
        assert first.stop_reason == "tool_use"
        use = next(b for b in first.content if b.type == "tool_use")
        history = [
            *ASK,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "hello"}],
            },
        ]
        return await ask(client, history, stream)


def sent_pair(req: Recorded) -> tuple[str, str]:
    """(the call's id, its result's id) as the backend got them."""
    messages = (req.json or {})["messages"]
    call = next(m for m in messages if m.get("tool_calls"))["tool_calls"][0]["id"]
    answer = next(m for m in messages if m["role"] == "tool")["tool_call_id"]
    return call, answer


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
async def test_a_devstral_tool_loop_gets_past_its_first_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    refused: list[str] = []
    mistral_backend(fake_upstream, refused)
    d = await start_daemon(chain_yaml(backend(fake_upstream.url, "mistralai/Devstral-Small-2507")))
    answer = await tool_loop(d.url, stream=stream)
    assert not refused
    assert [b.text for b in answer.content if b.type == "text"] == [FINAL]
    call, result = sent_pair(fake_upstream.requests[-1])
    assert call == result and MISTRAL_ID.fullmatch(call)


async def test_a_provider_declares_mistral_ids_for_a_model_the_registry_does_not_know(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    refused: list[str] = []
    mistral_backend(fake_upstream, refused)
    own = "capabilities: {tool_id_format: mistral}"
    d = await start_daemon(chain_yaml(backend(fake_upstream.url, "my-agent-model", own)))
    answer = await tool_loop(d.url, stream=True)
    assert not refused
    assert [b.text for b in answer.content if b.type == "text"] == [FINAL]


async def test_a_provider_turns_mistral_ids_off_for_its_server(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # A server that reads any id (Ollama's Go templates): the ids go as they came.
    fake_upstream.script(
        read_call(stream=True), Reply(events=openai_text_stream([FINAL]), dialect="openai")
    )
    own = "capabilities: {tool_id_format: null}"
    d = await start_daemon(chain_yaml(backend(fake_upstream.url, "devstral:24b", own)))
    await tool_loop(d.url, stream=True)
    call, result = sent_pair(fake_upstream.requests[-1])
    assert call == result and call.startswith("toolu_")
