"""A server tool (an Anthropic tool of a type other than `custom`, with no
input_schema: web_search_20250305, which Claude Code's WebSearch sends) is
run by Anthropic, never by the client, and an OpenAI-compatible backend is
not offered it. A local model that still prints a call to it as text gets
no client `tool_use` made of it: the client could not run it. A tool of the
client's own beside it is lifted as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.clients import a_sdk, local, unary_and_streamed

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
READ = {
    "name": "read",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}
ASK: list[Any] = [{"role": "user", "content": "Perform a web search for the query: aiohttp"}]


def printed_call(name: str, arguments: dict[str, Any]) -> Callable[[Recorded], Reply]:
    """A backend whose model prints a call to `name` as text, whole or streamed."""
    call = json.dumps({"name": name, "arguments": arguments})
    text = f"<tool_call>{call}</tool_call>"

    def answer(request: Recorded) -> Reply:
        if request.json.get("stream"):
            return Reply(dialect="openai", events=openai_text_stream([text[:20], text[20:]]))
        return Reply(dialect="openai", json=openai_completion(text))

    return answer


@pytest.mark.parametrize(
    "choice", [None, {"type": "tool", "name": "web_search"}], ids=["auto", "forced"]
)
async def test_a_printed_call_to_a_server_tool_stays_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, choice: dict[str, Any] | None
) -> None:
    fake_upstream.responder = printed_call("web_search", {"query": "aiohttp"})
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    kw: dict[str, Any] = {"model": "m", "max_tokens": 1000, "messages": ASK, "tools": [WEB_SEARCH]}
    if choice is not None:
        kw["tool_choice"] = choice
    for message in await unary_and_streamed(d.url, kw):
        assert [b.type for b in message.content] == ["text"], message.content
        assert "web_search" in message.content[0].text
        assert message.stop_reason == "end_turn"
    assert all("tools" not in r.json for r in fake_upstream.requests)


async def test_a_client_tool_beside_a_server_tool_is_still_lifted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = printed_call("read", {"path": "a.py"})
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(
            model="m",
            max_tokens=1000,
            messages=ASK,
            tools=[WEB_SEARCH, READ],  # type: ignore[list-item]
        )
    [call] = [b for b in message.content if b.type == "tool_use"]
    assert call.name == "read" and call.input == {"path": "a.py"}
    assert message.stop_reason == "tool_use"


async def test_a_printed_call_to_a_tool_anthropic_defines_for_the_client_is_lifted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """bash_20250124 has no input_schema either, but the client runs it:
    a printed call to it is a tool_use, whole or streamed."""
    fake_upstream.responder = printed_call("bash", {"command": "ls"})
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    bash = {"type": "bash_20250124", "name": "bash"}
    kw: dict[str, Any] = {"model": "m", "max_tokens": 1000, "messages": ASK, "tools": [bash]}
    for message in await unary_and_streamed(d.url, kw):
        [call] = [b for b in message.content if b.type == "tool_use"]
        assert (call.name, call.input) == ("bash", {"command": "ls"})
        assert message.stop_reason == "tool_use"
