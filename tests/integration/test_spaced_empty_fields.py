"""A request's empty `tools` (or `functions`, or reasoning object) however
it is spaced says nothing: no tools were offered, and nothing was taken
from a model that cannot take them.

A client writing its JSON by hand or from a template may put an empty list
over lines (`"tools": [\\n      ]`). Taken for tools, it would count the
model's plain answers as tool calls it failed to make (drift's
tool_silence_rate) and log a degradation for tools nobody sent.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import dropped

SPACED = b"[\n        \n      ]"
SPACED_OBJECT = b"{\n        \n      }"
CHAT = b'{"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]'


async def post(url: str, path: str, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + path, data=body, headers={"content-type": "application/json"}) as resp,
    ):
        await resp.read()
        return resp.status


def completed(logs: list[dict[str, Any]]) -> dict[str, Any]:
    [done] = [e for e in logs if e["event"] == "request.completed"]
    return done


def local(url: str, capabilities: str = "") -> str:
    extra = f"capabilities: {{{capabilities}}}" if capabilities else ""
    return provider_yaml("local", url + "/v1", kind="openai_compat", extra=extra)


@pytest.mark.parametrize("field", [b"tools", b"functions"])
async def test_a_spaced_empty_tool_list_offers_no_tools_to_an_openai_backend(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, field: bytes
) -> None:
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("hello"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    body = CHAT + b', "' + field + b'": ' + SPACED + b"}"
    with capture_logs() as logs:
        assert await post(d.url, "/v1/chat/completions", body) == 200
    assert completed(logs)["tools_offered"] is False


async def test_a_spaced_empty_tool_list_offers_no_tools_to_an_anthropic_backend(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("hello"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    body = CHAT + b', "tools": ' + SPACED + b"}"
    with capture_logs() as logs:
        assert await post(d.url, "/v1/messages", body) == 200
    assert completed(logs)["tools_offered"] is False


async def test_a_spaced_empty_tool_list_is_no_tools_taken_from_a_model_without_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("hello"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, "tools: false")))
    body = CHAT + b', "tools": ' + SPACED + b', "functions": ' + SPACED + b"}"
    with capture_logs() as logs:
        assert await post(d.url, "/v1/chat/completions", body) == 200
    assert "tools" not in fake_upstream.requests[0].json
    assert dropped(logs) == []


async def test_a_spaced_empty_reasoning_object_is_no_reasoning_taken_from_a_model_that_cannot_think(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("hello"))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, "thinking: false")))
    body = CHAT + b', "reasoning": ' + SPACED_OBJECT + b"}"
    with capture_logs() as logs:
        assert await post(d.url, "/v1/chat/completions", body) == 200
    assert "reasoning" not in fake_upstream.requests[0].json
    assert dropped(logs) == []
