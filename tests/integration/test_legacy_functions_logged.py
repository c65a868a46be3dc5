"""What the request log says of an OpenAI client declaring its tools the
legacy way (`functions`, `function_call`): whether the answer called a tool
(`tool_use`), whether the answering provider was sent tools it could call
(`tools_offered`), both read by drift and `coderouterd requests`; and the
tool-loop guard reading a loop written in that form."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest
from structlog.testing import capture_logs

from coderouterd.state import reads
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import local, o_sdk
from tests.integration.test_o2a_legacy_functions import (
    ASK,
    CALL_EVENTS,
    CALL_MESSAGE,
    WEATHER,
    legacy_call,
    legacy_result,
)

# An OpenAI-compatible backend answering in the legacy form itself.
LEGACY_COMPLETION: dict[str, Any] = {
    **openai_completion("", finish_reason="function_call"),
}
LEGACY_COMPLETION["choices"] = [
    {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        "finish_reason": "function_call",
    }
]


async def _last_row(d: Any, provider: str = "claude") -> Any:
    await d.state.writer.flush()
    [row] = await d.state.writer.maintain(
        lambda conn: reads.recent_requests(conn, since=None, provider=provider, limit=1)
    )
    return row


async def _post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/chat/completions", json=body) as resp,
    ):
        return resp.status, await resp.read()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_legacy_function_call_is_logged_as_a_tool_call_to_a_request_offering_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """Claude's tool_use, answered as `function_call` (a message's, or the
    deltas'), is a tool call; `functions` sent to Claude as tools are tools
    offered. The row agrees with its own `stop_reason: tool_use`."""
    fake_upstream.default = Reply(events=CALL_EVENTS) if stream else Reply(json=CALL_MESSAGE)
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    body = {"model": "x", "messages": [ASK], "functions": [WEATHER], "stream": stream}
    status, answer = await _post(d.url, body)
    assert status == 200, answer
    assert b'"function_call"' in answer
    assert "tools" in fake_upstream.requests[0].json
    row = await _last_row(d)
    assert row.stop_reason == "tool_use"
    assert (row.tools_offered, row.tool_use) == (True, True)


async def test_a_backends_own_legacy_function_call_is_logged_as_a_tool_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """An OpenAI-compatible backend answering the legacy form itself, its
    answer passed through as it is."""
    fake_upstream.default = Reply(json=LEGACY_COMPLETION, dialect="openai")
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    body = {"model": "x", "messages": [ASK], "functions": [WEATHER]}
    status, answer = await _post(d.url, body)
    assert status == 200, answer
    assert fake_upstream.requests[0].json["functions"] == [WEATHER]
    row = await _last_row(d, "local")
    assert row.stop_reason == "tool_use"
    assert (row.tools_offered, row.tool_use) == (True, True)


@pytest.mark.parametrize(
    ("choice", "offered"),
    [
        ({"function_call": "auto"}, True),
        ({"function_call": {"name": "get_weather"}}, True),
        ({"function_call": "none"}, False),
        ({"tool_choice": "none"}, False),
        # tool_choice decides over function_call, as params_o2a reads them.
        ({"tool_choice": "auto", "function_call": "none"}, True),
    ],
)
async def test_a_legacy_function_call_none_offers_no_tool_the_model_could_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, choice: dict[str, Any], offered: bool
) -> None:
    """Drift counts a text answer against a model only when it could have
    called a tool: the legacy `function_call: "none"` says it could not."""
    fake_upstream.default = Reply(json=anthropic_message("sunny"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    body = {"model": "x", "messages": [ASK], "functions": [WEATHER], **choice}
    status, answer = await _post(d.url, body)
    assert status == 200, answer
    row = await _last_row(d)
    assert (row.tools_offered, row.tool_use) == (offered, False)


@pytest.mark.parametrize("kind", ["anthropic", "openai_compat"])
async def test_legacy_functions_kept_from_a_provider_without_tools_are_not_offered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, kind: str
) -> None:
    """A provider with `capabilities: {tools: false}` is sent no functions:
    its text answer is no tool silence."""
    no_tools = "capabilities: {tools: false}"
    if kind == "anthropic":
        fake_upstream.default = Reply(json=anthropic_message("sunny"))
        provider = provider_yaml("local", fake_upstream.url, extra=no_tools)
    else:
        fake_upstream.default = Reply(json=openai_completion("sunny"), dialect="openai")
        provider = local(fake_upstream.url, no_tools)
    d = await start_daemon(chain_yaml(provider))
    body = {"model": "x", "messages": [ASK], "functions": [WEATHER]}
    status, answer = await _post(d.url, body)
    assert status == 200, answer
    sent = fake_upstream.requests[0].json
    assert "functions" not in sent
    assert "tools" not in sent
    row = await _last_row(d, "local")
    assert (row.tools_offered, row.tool_use) == (False, False)


def _legacy_loop(calls: int) -> list[Any]:
    """A LangChain agent's history: the same legacy call `calls` times, each
    answered by the same result."""
    messages: list[Any] = [{"role": "system", "content": "be brief"}, ASK]
    for _ in range(calls):
        messages += [
            legacy_call("get_weather", '{"city": "Paris"}'),
            legacy_result("get_weather", "sunny"),
        ]
    return messages


async def test_a_loop_of_legacy_function_calls_is_logged_and_broken(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The guard reads a loop in the legacy form as one in `tool_calls`:
    `warn` logs `request.tool_loop`, `break` answers 400 naming it."""
    fake_upstream.default = Reply(json=anthropic_message("sunny"))
    claude = provider_yaml("claude", fake_upstream.url)
    profiles = (
        "  - {name: default, providers: [claude], tool_loop_action: warn}\n"
        "  - {name: strict, providers: [claude], tool_loop_action: break}\n"
    )
    d = await start_daemon(chain_yaml(claude, profiles=profiles))
    async with o_sdk(d.url) as client:
        with capture_logs() as logs:
            await client.chat.completions.create(
                model="x",
                messages=_legacy_loop(3),
                functions=[WEATHER],  # type: ignore[list-item]
            )
        [line] = [e for e in logs if e["event"] == "request.tool_loop"]
        assert (line["tool"], line["repeats"]) == ("get_weather", 3)

        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="strict",
                messages=_legacy_loop(3),
                functions=[WEATHER],  # type: ignore[list-item]
            )
    assert "get_weather was called 3 times in a row" in str(caught.value)
    assert len(fake_upstream.requests) == 1
