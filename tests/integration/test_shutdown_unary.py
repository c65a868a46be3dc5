"""SIGTERM with a non-streaming request still waiting on its provider when the
grace period ends: the client is answered 503 "shutting down" in its dialect,
the status its request log line says, never a dropped connection."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, o_sdk
from tests.integration.process import StartServe

pytestmark = pytest.mark.timeout(60)

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


async def ask_anthropic(url: str) -> object:
    async with a_sdk(url) as client:
        return await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)


async def ask_openai(url: str) -> object:
    async with o_sdk(url) as client:
        return await client.chat.completions.create(model="m", max_tokens=5, messages=MESSAGES)


@pytest.mark.parametrize(
    ("ask", "refused"),
    [
        (ask_anthropic, anthropic.InternalServerError),
        (ask_openai, openai.InternalServerError),
    ],
    ids=["anthropic", "openai"],
)
async def test_a_unary_request_abandoned_at_shutdown_is_answered_503_shutting_down(
    serve_process: StartServe,
    fake_upstream: FakeUpstream,
    ask: Callable[[str], Awaitable[object]],
    refused: type[anthropic.APIStatusError | openai.APIStatusError],
) -> None:
    # The provider answers long after the grace period.
    fake_upstream.default = Reply(json=anthropic_message("late"), delay_before_headers=30)
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)), server={"grace_period_s": 0.5}
    )
    client = asyncio.create_task(ask(d.url))
    await fake_upstream.wait_for_requests(1, timeout=5)
    d.send_signal(signal.SIGTERM)

    # A dropped connection would be the SDK's APIConnectionError instead.
    with pytest.raises(refused) as caught:
        await asyncio.wait_for(client, 10)
    assert caught.value.status_code == 503
    assert "shutting down" in caught.value.message
    assert caught.value.response.headers["connection"] == "close"
    assert await d.wait(timeout=15) == 0
    [done] = d.events("request.completed")
    assert (done["status"], done["error"]) == (503, "abandoned at shutdown"), done
    assert [a["reason"] for a in done["attempts"]] == ["shutdown"]
