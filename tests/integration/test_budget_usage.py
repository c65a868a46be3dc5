"""How usage becomes spend: the request log and the month's budget count what
the provider billed, as the client was told it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from coderouterd.routing.cost import month_of
from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.state.records import RequestRow
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import (
    anthropic_message,
    anthropic_text_stream,
    openai_completion,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
# $1 per input token, $2 per output token: easy sums.
PRICED = """cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: 1000
"""
# The stream's bytes forwarded as they come (an openai_compat provider's
# default filters rewrite its text).
UNFILTERED = (
    PRICED
    + """output_filters:
  think: "off"
  strip_tool_markup: false
  repair_tool_calls: false
  strip_stop_markers: false
"""
)
CHAT = {"model": "m", "messages": MESSAGES, "stream": True}


async def only_row(d: RunningDaemon) -> RequestRow:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        [(rid,)] = await conn.execute_fetchall("SELECT id FROM requests")
        row = await reads.request(conn, rid)
        assert row is not None
        return row
    finally:
        await conn.close()


async def stored_spend(d: RunningDaemon, provider: str) -> float:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        return (await reads.month_totals(conn, month_of(time.time())))[provider].cost_usd
    finally:
        await conn.close()


def spent(d: RunningDaemon, provider: str) -> float:
    return d.daemon.budget.spent(provider, month_of(d.daemon.clock.wall()))


def with_input_repeated_as_zero(events: list[Any]) -> list[Any]:
    """The final message_delta repeats input_tokens as 0, as some servers do."""
    delta = next(data for name, data in events if name == "message_delta")
    delta["usage"] = {"output_tokens": 5, "input_tokens": 0}
    return events


async def test_an_input_count_repeated_as_zero_is_accounted_as_the_openai_client_is_told(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = anthropic_text_stream(["hello"], input_tokens=10, output_tokens=5)
    fake_upstream.script(Reply(events=with_input_repeated_as_zero(events)))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        told = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in told] == [(10, 5)]
    row = await only_row(d)
    assert (row.input_tokens, row.output_tokens) == (10, 5)
    assert row.cost_usd == pytest.approx(20.0)
    assert spent(d, "cloud") == pytest.approx(20.0)


async def test_an_input_count_repeated_as_zero_is_accounted_on_the_anthropic_passthrough(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = anthropic_text_stream(["hello"], input_tokens=10, output_tokens=5)
    fake_upstream.script(Reply(events=with_input_repeated_as_zero(events)))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    async with (
        anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client,
        client.messages.stream(model="m", max_tokens=5, messages=MESSAGES) as stream,
    ):
        await stream.get_final_message()
    # The frames reach the client as they were sent; the provider billed the 10.
    row = await only_row(d)
    assert (row.input_tokens, row.output_tokens) == (10, 5)
    assert spent(d, "cloud") == pytest.approx(20.0)


def assert_estimated(row: RequestRow, output_tokens: int) -> None:
    """Usage estimated as the translated paths estimate it: the prompt's
    estimate, and a quarter of the characters streamed."""
    assert row.input_tokens == row.prompt_estimate
    assert row.output_tokens == output_tokens
    assert row.input_tokens is not None
    assert row.cost_usd == pytest.approx(row.input_tokens * 1.0 + output_tokens * 2.0)


async def test_an_openai_passthrough_stream_cut_after_content_is_charged_at_estimated_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The role chunk, then 8 characters of content: 2 tokens estimated.
    fake_upstream.script(
        Reply(
            events=openai_text_stream(["abcd", "efgh", "ijkl"]),
            dialect="openai",
            disconnect_after_events=3,
        )
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat", extra=PRICED)
        )
    )
    async with (
        aiohttp.ClientSession() as s,
        s.post(d.url + "/v1/chat/completions", json=CHAT) as resp,
    ):
        assert b'"error"' in await resp.read()  # the cut reached the client as an error frame
    row = await only_row(d)
    assert row.provider == "o"
    assert_estimated(row, output_tokens=2)
    assert spent(d, "o") == pytest.approx(row.cost_usd)
    assert await stored_spend(d, "o") == pytest.approx(row.cost_usd)


async def test_an_openai_passthrough_stream_the_client_left_is_charged_at_estimated_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resume = asyncio.Event()
    # The role chunk and 4 characters, then nothing until the client has left.
    fake_upstream.script(
        Reply(
            events=openai_text_stream(["abcd", "efgh"]),
            dialect="openai",
            pause_after_frames=2,
            resume=resume,
        )
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat", extra=UNFILTERED)
        )
    )
    async with aiohttp.ClientSession() as s:
        resp = await s.post(d.url + "/v1/chat/completions", json=CHAT)
        assert b"abcd" in await resp.content.readuntil(b"abcd")
        resp.close()
    await fake_upstream.wait_for_disconnect(timeout=5)
    await until(lambda: len(d.daemon.inflight) == 0, timeout=5)
    row = await only_row(d)
    assert row.client_disconnected
    assert_estimated(row, output_tokens=1)
    assert row.usage_estimated
    assert spent(d, "o") == pytest.approx(row.cost_usd)


@pytest.mark.parametrize("extra", [UNFILTERED, PRICED], ids=["unfiltered", "filtered"])
async def test_an_openai_passthrough_stream_without_a_usage_chunk_is_charged_at_estimated_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, extra: str
) -> None:
    """A server that ignores `stream_options.include_usage`, with or without
    the output filters between it and the client."""
    fake_upstream.script(
        Reply(events=openai_text_stream(["abcd", "efgh"], include_usage=False), dialect="openai")
    )
    d = await start_daemon(
        chain_yaml(provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat", extra=extra))
    )
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "abcdefgh"
    row = await only_row(d)
    assert_estimated(row, output_tokens=2)
    assert row.usage_estimated


@pytest.mark.parametrize("extra", [UNFILTERED, PRICED], ids=["unfiltered", "filtered"])
async def test_an_openai_passthrough_usage_chunk_without_prompt_tokens_has_its_input_estimated(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, extra: str
) -> None:
    """A server whose usage chunk counts only the completion: the output is
    taken as reported and the input estimated, the usage marked estimated
    and charged, as a whole answer's missing count is."""
    events = openai_text_stream(["abcd", "efgh"], completion_tokens=7)
    del events[-1][1]["usage"]["prompt_tokens"]
    fake_upstream.script(Reply(events=events, dialect="openai"))
    d = await start_daemon(
        chain_yaml(provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat", extra=extra))
    )
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        _ = [c async for c in stream]
    row = await only_row(d)
    assert_estimated(row, output_tokens=7)
    assert row.usage_estimated
    assert spent(d, "o") == pytest.approx(row.cost_usd)


async def test_more_cached_tokens_than_prompt_tokens_never_make_spend_negative(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Servers that count `prompt_tokens` as the tokens processed after the
    cache: input is 0, as on the translating path, and so is its cost."""
    body = openai_completion("hi", prompt_tokens=10, completion_tokens=5)
    body["usage"]["prompt_tokens_details"] = {"cached_tokens": 100}
    fake_upstream.script(Reply(json=body, dialect="openai"))
    d = await start_daemon(
        chain_yaml(
            provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat", extra=PRICED)
        )
    )
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    row = await only_row(d)
    assert (row.input_tokens, row.cache_read_input_tokens, row.output_tokens) == (0, 100, 5)
    # 100 cache reads at 10 % of $1, and 5 output tokens at $2.
    assert row.cost_usd == pytest.approx(20.0)
    assert spent(d, "o") == pytest.approx(20.0)
    assert await stored_spend(d, "o") == pytest.approx(20.0)


async def test_negative_counts_from_a_backend_never_lower_the_spend(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Counts no backend can mean are each read as 0; the sane ones are billed
    (the output here), whatever the path they came by."""
    fake_upstream.script(
        Reply(json=anthropic_message("odd", input_tokens=-50, output_tokens=5)),
        Reply(json=anthropic_message("ok")),
    )
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for _ in range(2):
            await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert spent(d, "cloud") == pytest.approx(30.0)
    assert await stored_spend(d, "cloud") == pytest.approx(30.0)
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        costs = await conn.execute_fetchall("SELECT cost_usd FROM requests ORDER BY ts")
    finally:
        await conn.close()
    assert [c for (c,) in costs] == [pytest.approx(10.0), pytest.approx(20.0)]
    async with aiohttp.ClientSession() as s, s.get(d.url + "/metrics") as resp:
        metrics = (await resp.text()).splitlines()
    [total] = [line for line in metrics if line.startswith("coderouterd_cost_usd_total{")]
    assert float(total.split()[-1]) == pytest.approx(30.0)
