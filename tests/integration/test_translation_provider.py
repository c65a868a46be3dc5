"""Provider settings on the translated paths reach the wire, and errors keep the client's envelope."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local

MESSAGES: list[Any] = [{"role": "user", "content": "go"}]


async def test_extra_headers_of_an_openai_compat_provider_reach_it_from_both_dialects(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("ok"))
    extra = 'extra_headers: {HTTP-Referer: "https://example.dev", X-Title: coderouterd}'
    d = await start_daemon(chain_yaml(local(fake_upstream.url, extra)))
    async with a_sdk(d.url) as client:
        await client.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        await client.chat.completions.create(model="x", messages=MESSAGES)
    for sent in fake_upstream.requests:
        assert sent.headers["HTTP-Referer"] == "https://example.dev"
        assert sent.headers["X-Title"] == "coderouterd"


async def test_the_provider_max_output_tokens_clamps_an_anthropic_clients_max_tokens(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(["ok"])))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, "max_output_tokens: 300")))
    with capture_logs() as logs:
        async with (
            a_sdk(d.url) as client,
            client.messages.stream(model="m", max_tokens=32000, messages=MESSAGES) as stream,
        ):
            await stream.get_final_message()
    assert fake_upstream.requests[0].json["max_tokens"] == 300
    [degraded] = [e for e in logs if e["event"] == "capability.degraded"]
    assert degraded["provider"] == "local"
    assert degraded["dropped"] == ["max_tokens: clamped from 32000 to the provider's limit of 300"]


# An Anthropic 400 that no other provider would answer differently.
TOO_MANY_TOKENS = "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens"


async def test_an_anthropic_upstream_error_reaches_an_openai_client_in_the_openai_envelope(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(anthropic_error(400, "invalid_request_error", TOO_MANY_TOKENS))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    body = {"model": "x", "messages": MESSAGES}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/chat/completions", json=body) as resp,
    ):
        status, envelope = resp.status, await resp.json()
    assert status == 400
    assert envelope == {
        "error": {
            "message": TOO_MANY_TOKENS,
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    fake_upstream.script(anthropic_error(400, "invalid_request_error", TOO_MANY_TOKENS))
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="x", messages=MESSAGES)
    assert info.value.message.endswith(TOO_MANY_TOKENS)


async def test_stray_tool_call_markup_is_stripped_by_default_on_openai_compat(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Repair is off here, and the call names no offered tool anyway: only stripping acts.
    markup = '<tool_call>{"name": "Unknown", "arguments": {}}</tool_call>'
    fake_upstream.script(
        Reply(dialect="openai", events=openai_text_stream(["Sure. ", markup, " Done."]))
    )
    d = await start_daemon(
        chain_yaml(local(fake_upstream.url, "output_filters: {repair_tool_calls: false}"))
    )
    async with (
        a_sdk(d.url) as client,
        client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream,
    ):
        message = await stream.get_final_message()
    assert [b.text for b in message.content if b.type == "text"] == ["Sure. Done."]
    assert message.stop_reason == "end_turn"
