"""A provider's `capabilities: {tools: false}` keeps tools away from it,
whatever the client's dialect and the provider's kind: a backend whose
template cannot call tools answers 400 "does not support tools", a 4xx that
would reach the client without falling through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, dropped, o_sdk

A_TOOLS: list[Any] = [
    {
        "name": "Read",
        "description": "read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]
O_FUNCTION: Any = {
    "name": "Read",
    "description": "read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
}
O_TOOLS: list[Any] = [{"type": "function", "function": O_FUNCTION}]
ASK: list[Any] = [{"role": "user", "content": "what is in a.py?"}]
NO_TOOLS = "capabilities: {tools: false}"


def tools_offered(logs: Sequence[Mapping[str, Any]]) -> bool:
    [done] = [e for e in logs if e["event"] == "request.completed"]
    return bool(done["tools_offered"])


async def test_an_anthropic_clients_tools_do_not_reach_an_anthropic_provider_without_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("a.py holds the parser"))
    provider = provider_yaml("local", fake_upstream.url, extra=NO_TOOLS)
    d = await start_daemon(chain_yaml(provider))
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            answer = await client.messages.create(
                model="m",
                max_tokens=100,
                tools=A_TOOLS,
                tool_choice={"type": "auto"},
                messages=ASK,
            )
    assert answer.content[0].text == "a.py holds the parser"  # type: ignore[union-attr]
    sent = fake_upstream.requests[0].json
    assert "tools" not in sent
    assert "tool_choice" not in sent
    assert sent["messages"] == ASK
    assert any(d.startswith("tools") for d in dropped(logs))
    assert tools_offered(logs) is False


@pytest.mark.parametrize(
    "declared",
    [
        {"tools": O_TOOLS, "tool_choice": "required", "parallel_tool_calls": False},
        {"functions": [O_FUNCTION], "function_call": {"name": "Read"}},
    ],
    ids=["tools", "legacy_functions"],
)
async def test_an_openai_clients_tools_do_not_reach_an_anthropic_provider_without_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, declared: dict[str, Any]
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("a.py holds the parser"))
    provider = provider_yaml("local", fake_upstream.url, extra=NO_TOOLS)
    d = await start_daemon(chain_yaml(provider))
    with capture_logs() as logs:
        async with o_sdk(d.url) as client:
            answer = await client.chat.completions.create(
                model="m", max_tokens=100, messages=ASK, **declared
            )
    assert answer.choices[0].message.content == "a.py holds the parser"
    sent = fake_upstream.requests[0].json
    assert "tools" not in sent
    assert "tool_choice" not in sent
    assert any(d.startswith("tools") for d in dropped(logs))
    assert tools_offered(logs) is False
