"""A Claude Code session falling back to a model that cannot call tools.

The registry marks `gemma3:*` on Ollama `tools: false`: its chat template
has no tool section. Ollama's gemma3 template renders only `user`, `system`
and `assistant` messages: a `role: tool` message is skipped and an assistant
message holding only `tool_calls` renders as an empty turn; llama.cpp with
Gemma's Jinja template raises "Conversation roles must alternate". So the
history's calls and results reach such a model as text it can read.
"""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, dropped, local

READ: dict[str, Any] = {
    "name": "Read",
    "description": "read a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
}
PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a")).decode()


def call(call_id: str, path: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "Read", "input": {"file_path": path}}


async def on_gemma(start_daemon: StartDaemon, fake: FakeUpstream) -> str:
    fake.default = Reply(json=openai_completion("ok"), dialect="openai")
    d = await start_daemon(chain_yaml(local(fake.url).replace("local-model", "gemma3:12b")))
    return d.url


async def test_a_tool_history_reaches_a_model_without_tools_as_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_gemma(start_daemon, fake_upstream)
    history = [
        {"role": "user", "content": "what is in /a and /b?"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Reading both."}, call("t1", "/a"), call("t2", "/b")],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "SECRET-FILE-BODY"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "no such file", "is_error": True},
                {"type": "text", "text": "go on"},
            ],
        },
    ]  # fmt: skip
    with capture_logs() as logs:
        async with a_sdk(url) as client:
            await client.messages.create(model="m", max_tokens=100, messages=history, tools=[READ])
    body = fake_upstream.requests[-1].json
    assert isinstance(body, dict)
    assert "tools" not in body
    assert body["messages"] == [
        {"role": "user", "content": "what is in /a and /b?"},
        {
            "role": "assistant",
            "content": "Reading both.\n"
            '[tool call t1: Read {"file_path":"/a"}]\n'
            '[tool call t2: Read {"file_path":"/b"}]',
        },
        {
            "role": "user",
            "content": "[result of tool call t1]\nSECRET-FILE-BODY\n"
            "[error of tool call t2]\nno such file\ngo on",
        },
    ]
    assert {d.split(":")[0] for d in dropped(logs)} >= {"content.tool_use", "content.tool_result"}


async def test_a_tool_results_image_reaches_a_vision_model_without_tools_beside_its_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await on_gemma(start_daemon, fake_upstream)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    history = [
        {"role": "user", "content": "look at /a.png"},
        {"role": "assistant", "content": [call("t1", "/a.png")]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [image]}]},
    ]  # fmt: skip
    async with a_sdk(url) as client:
        await client.messages.create(model="m", max_tokens=100, messages=history, tools=[READ])
    body = fake_upstream.requests[-1].json
    assert isinstance(body, dict)
    assert body["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "[result of tool call t1]"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ],
    }


async def test_a_history_call_without_an_id_is_the_clients_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """As for any backend: a 400 naming the field, not a server error the
    SDKs would retry."""
    url = await on_gemma(start_daemon, fake_upstream)
    history: list[Any] = [
        {"role": "user", "content": "read /a"},
        {"role": "assistant", "content": [{"type": "tool_use", "name": "Read", "input": {}}]},
        {"role": "user", "content": "go on"},
    ]
    async with a_sdk(url) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(model="m", max_tokens=50, messages=history, tools=[READ])
    assert "messages[1].content[0].id" in info.value.message
