"""An OpenAI client's prompt-cache markers reach an Anthropic provider.

Clients written for OpenRouter or LiteLLM (Cline, Roo Code, Kilo) mark the
prompt prefix with `cache_control` on content parts; Anthropic caches only
what is marked, so a marker lost on the way bills every turn of a long
session at the full input price.
"""

from __future__ import annotations

import json
from typing import Any

from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import dropped
from tests.integration.clients import o_sdk as sdk

LONG = "Project conventions: keep functions small. " * 300
EPH = {"type": "ephemeral"}


def part(text: str, marker: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "text", "text": text} | ({"cache_control": marker} if marker else {})


async def test_a_marked_system_prompt_reaches_claude_marked(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("ok")))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    messages: Any = [
        {"role": "system", "content": [part(LONG, EPH)]},
        {"role": "user", "content": "hi"},
    ]
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            completion = await client.chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == "ok"
    sent = fake_upstream.requests[-1].json
    assert sent["system"] == [part(LONG, EPH)]
    assert sent["messages"] == [{"role": "user", "content": [part("hi")]}]
    assert dropped(logs) == []


async def test_a_roo_code_tool_loop_keeps_its_breakpoints_with_their_ttl(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Roo Code marks the system prompt and the last part of the last user
    or tool message, and of the one before the last answer; a 1h ttl
    comes through as sent."""
    hour = {"type": "ephemeral", "ttl": "1h"}
    fake_upstream.script(Reply(json=anthropic_message("ok")))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    read = {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": "{}"}}
    messages: Any = [
        {"role": "system", "content": [part(LONG, hour)]},
        {"role": "user", "content": [part("<task>tidy</task>", EPH)]},
        {"role": "assistant", "content": "reading", "tool_calls": [read]},
        {"role": "tool", "tool_call_id": "call_1", "content": [part("file text", EPH)]},
    ]
    tools: Any = [{"type": "function", "function": {"name": "read", "parameters": {}}}]
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            await client.chat.completions.create(model="m", messages=messages, tools=tools)
    sent = fake_upstream.requests[-1].json
    assert sent["system"] == [part(LONG, hour)]
    assert sent["messages"][0]["content"] == [part("<task>tidy</task>", EPH)]
    result = sent["messages"][2]["content"][0]
    assert result["type"] == "tool_result"
    assert result["content"] == [part("file text", EPH)]
    assert json.dumps(sent).count('"cache_control"') == 3
    assert dropped(logs) == []


async def test_more_markers_than_anthropic_takes_keep_the_last_four_recorded(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Anthropic refuses a request with a fifth breakpoint: the first ones
    go, the request is answered and the drop is logged."""
    fake_upstream.script(Reply(json=anthropic_message("ok")))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    messages: Any = [{"role": "system", "content": [part(LONG, EPH)]}]
    for n in range(5):
        messages += [
            {"role": "user", "content": [part(f"question {n}", EPH)]},
            {"role": "assistant", "content": f"answer {n}"},
        ]
    messages.append({"role": "user", "content": "last"})
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            completion = await client.chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == "ok"
    sent = fake_upstream.requests[-1].json
    assert sent["system"] == [part(LONG)]
    marked = [m["content"][0]["text"] for m in sent["messages"] if "cache_control" in json.dumps(m)]
    assert marked == ["question 1", "question 2", "question 3", "question 4"]
    assert [x.split(":")[0] for x in dropped(logs)] == ["cache_control"]


async def test_a_backend_that_refuses_markers_gets_none(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("ok")))
    claude = provider_yaml(
        "claude", fake_upstream.url, extra="capabilities: {cache_control: false}"
    )
    d = await start_daemon(chain_yaml(claude))
    messages: Any = [
        {"role": "system", "content": [part(LONG, EPH)]},
        {"role": "user", "content": [part("hi", EPH)]},
    ]
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            await client.chat.completions.create(model="m", messages=messages)
    assert "cache_control" not in json.dumps(fake_upstream.requests[-1].json)
    assert any(d.startswith("cache_control") for d in dropped(logs))
