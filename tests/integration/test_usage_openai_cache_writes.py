"""Cache writes an OpenAI-compatible provider reports
(`prompt_tokens_details.cache_write_tokens`: OpenRouter's shape, and the one
coderouterd writes to its own OpenAI clients) are cache writes: taken out of
`prompt_tokens` with the cached tokens, billed at the write premium,
recorded as such, and told to an Anthropic client as
`cache_creation_input_tokens`, whole or streamed, in either client dialect."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from coderouterd.state.db import open_db
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk

# $1 per input token, $2 per output token; cache reads x0.10, writes x1.25.
PRICED = """cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: 100000
"""
# 150 prompt tokens: 100 read from the cache, 40 written to it, 10 plain.
USAGE = {
    "prompt_tokens": 150,
    "completion_tokens": 5,
    "total_tokens": 155,
    "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 40},
}
EXPECTED_COST = 10 * 1.0 + 40 * 1.25 + 100 * 0.10 + 5 * 2.0
HI: list[Any] = [{"role": "user", "content": "hi"}]


def with_usage(usage: dict[str, Any], *, stream: bool) -> Reply:
    if stream:
        events = openai_text_stream(["hello"])
        events[-1][1]["usage"] = usage
        return Reply(events=events, dialect="openai")
    completion = openai_completion("hello")
    completion["usage"] = usage
    return Reply(json=completion, dialect="openai")


async def router(start_daemon: StartDaemon, fake_upstream: FakeUpstream) -> RunningDaemon:
    return await start_daemon(
        chain_yaml(
            provider_yaml("router", fake_upstream.url + "/v1", kind="openai_compat", extra=PRICED)
        )
    )


async def recorded(d: RunningDaemon) -> tuple[Any, ...]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        [row] = await conn.execute_fetchall(
            "SELECT input_tokens, cache_read_input_tokens, cache_creation_input_tokens,"
            " cost_usd, cache_outcome FROM requests"
        )
    finally:
        await conn.close()
    return tuple(row)


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
async def test_an_anthropic_client_is_told_and_billed_the_cache_writes(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    fake_upstream.script(with_usage(USAGE, stream=stream))
    d = await router(start_daemon, fake_upstream)
    kw: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": HI}
    async with a_sdk(d.url) as client:
        if stream:
            async with client.messages.stream(**kw) as s:
                message = await s.get_final_message()
        else:
            message = await client.messages.create(**kw)
    told = message.usage
    assert (told.input_tokens, told.cache_read_input_tokens) == (10, 100)
    assert told.cache_creation_input_tokens == 40
    assert await recorded(d) == (10, 100, 40, pytest.approx(EXPECTED_COST), "hit")


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
async def test_an_openai_clients_answer_is_billed_for_its_cache_writes(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """The answer goes through as sent; what is recorded splits its prompt."""
    fake_upstream.script(with_usage(USAGE, stream=stream))
    d = await router(start_daemon, fake_upstream)
    body = {"model": "m", "max_tokens": 5, "messages": HI, "stream": stream}
    async with aiohttp.ClientSession() as s, s.post(d.url + "/v1/chat/completions", json=body) as r:
        assert r.status == 200, await r.text()
        await r.read()
    assert await recorded(d) == (10, 100, 40, pytest.approx(EXPECTED_COST), "hit")


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
async def test_cache_counts_past_the_prompt_leave_no_input_rather_than_a_negative_one(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """A backend whose cache counts add up to more than its prompt_tokens:
    no input is billed, never a negative amount, and the cache counts
    stand as reported."""
    inconsistent = {**USAGE, "prompt_tokens": 120}
    fake_upstream.script(with_usage(inconsistent, stream=stream))
    d = await router(start_daemon, fake_upstream)
    kw: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": HI}
    async with a_sdk(d.url) as client:
        if stream:
            async with client.messages.stream(**kw) as s:
                message = await s.get_final_message()
        else:
            message = await client.messages.create(**kw)
    assert message.usage.input_tokens == 0
    cost = 40 * 1.25 + 100 * 0.10 + 5 * 2.0
    assert await recorded(d) == (0, 100, 40, pytest.approx(cost), "hit")
