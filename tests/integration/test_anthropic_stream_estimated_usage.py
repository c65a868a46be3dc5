"""An Anthropic-dialect stream that ends without its final usage (the last
`message_delta`'s) is priced at its estimated usage, marked estimated, as an
OpenAI stream without its usage chunk is (test_budget_usage): the input
reported, else the prompt's estimate, and the output at four bytes a token
of what was streamed, never `message_start`'s placeholder."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anthropic
import pytest

from coderouterd.state.records import RequestRow
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_budget_usage import only_row, spent

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
# $1 per input token, $2 per output token: easy sums.
PRICED = """cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: 100000
"""
FILTERED = PRICED + "output_filters: {think: thinking, strip_tool_markup: true}\n"
# 20 text deltas of 400 bytes: 2,000 output tokens at four bytes a token.
CHUNKS = ["x" * 400] * 20
STREAMED_TOKENS = 2000
# message_start, content_block_start, then the deltas.
THROUGH_DELTAS = 2 + len(CHUNKS)


def assert_priced_as_estimated(d: RunningDaemon, row: RequestRow, *, input_tokens: int) -> None:
    assert row.usage_estimated
    assert (row.input_tokens, row.output_tokens) == (input_tokens, STREAMED_TOKENS)
    assert row.cost_usd == pytest.approx(input_tokens + 2.0 * STREAMED_TOKENS)
    assert spent(d, "cloud") == pytest.approx(row.cost_usd)


async def test_an_anthropic_stream_the_client_left_is_charged_for_what_it_streamed(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The user interrupts a long answer (Claude Code's Esc) once 2,000
    tokens have streamed; `message_start` said 10 in, 1 out."""
    resume = asyncio.Event()
    fake_upstream.script(
        Reply(
            events=anthropic_text_stream(CHUNKS, input_tokens=10),
            pause_after_frames=THROUGH_DELTAS,
            resume=resume,
        )
    )
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    body = {"model": "m", "max_tokens": 8000, "messages": MESSAGES, "stream": True}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        resp = await s.post(d.url + "/v1/messages", json=body)
        seen = 0
        while seen < len(CHUNKS):
            line = await resp.content.readline()
            assert line, "the stream ended before its deltas"
            seen += line.count(b"text_delta")
        resp.close()
    await fake_upstream.wait_for_disconnect(timeout=5)
    await until(lambda: len(d.daemon.inflight) == 0, timeout=5)
    row = await only_row(d)
    assert row.client_disconnected
    assert_priced_as_estimated(d, row, input_tokens=10)


@pytest.mark.parametrize("extra", [PRICED, FILTERED], ids=["unfiltered", "filtered"])
async def test_an_anthropic_stream_cut_after_content_is_charged_at_estimated_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, extra: str
) -> None:
    """The provider's connection drops after the deltas: the client gets an
    error event, the attempt its estimated usage."""
    fake_upstream.script(
        Reply(
            events=anthropic_text_stream(CHUNKS, input_tokens=10),
            disconnect_after_events=THROUGH_DELTAS,
        )
    )
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=extra)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        text = ""
        with pytest.raises(anthropic.APIStatusError):
            async with client.messages.stream(
                model="m", max_tokens=8000, messages=MESSAGES
            ) as stream:
                async for piece in stream.text_stream:
                    text += piece
    assert text == "".join(CHUNKS)
    await until(lambda: len(d.daemon.inflight) == 0, timeout=5)
    row = await only_row(d)
    assert row.provider == "cloud"
    assert_priced_as_estimated(d, row, input_tokens=10)


async def test_an_anthropic_stream_cut_for_an_openai_client_is_charged_at_estimated_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(
            events=anthropic_text_stream(CHUNKS, input_tokens=10),
            disconnect_after_events=THROUGH_DELTAS,
        )
    )
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.post(d.url + "/v1/chat/completions", json=body) as resp,
    ):
        assert b'"error"' in await resp.read()
    await until(lambda: len(d.daemon.inflight) == 0, timeout=5)
    row = await only_row(d)
    assert row.provider == "cloud"
    assert_priced_as_estimated(d, row, input_tokens=10)


@pytest.mark.parametrize("extra", [PRICED, FILTERED], ids=["unfiltered", "filtered"])
async def test_an_anthropic_stream_without_usage_is_charged_at_estimated_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, extra: str
) -> None:
    """A server that reports no usage at all, in `message_start` or in
    `message_delta`: the prompt is its estimate, as the request log has it."""
    events = anthropic_text_stream(CHUNKS)
    for name, data in events:
        if name == "message_start":
            del data["message"]["usage"]
        elif name == "message_delta":
            del data["usage"]
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=extra)))
    body = {"model": "m", "max_tokens": 8000, "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.post(d.url + "/v1/messages", json=body) as resp,
    ):
        answer = await resp.read()
    assert answer.count(b"text_delta") == len(CHUNKS)
    assert b"event: message_stop" in answer
    await until(lambda: len(d.daemon.inflight) == 0, timeout=5)
    row = await only_row(d)
    assert row.prompt_estimate is not None
    assert_priced_as_estimated(d, row, input_tokens=row.prompt_estimate)


@pytest.mark.parametrize(
    "usage", [None, {}, {"input_tokens": 10}], ids=["absent", "empty", "input_only"]
)
async def test_a_message_delta_without_an_output_count_reaches_the_sdk_with_the_estimate(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, usage: dict[str, int] | None
) -> None:
    """The SDK's stream helper reads `usage.output_tokens` from the
    `message_delta`: one sent without that count gets the estimated one,
    beside the counts it has, which is also the one the request is priced at."""
    events = anthropic_text_stream(CHUNKS, input_tokens=10)
    for name, data in events:
        if name == "message_delta":
            if usage is None:
                del data["usage"]
            else:
                data["usage"] = usage
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    client = anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0)
    try:
        async with client.messages.stream(model="m", max_tokens=8000, messages=MESSAGES) as stream:
            message = await stream.get_final_message()
    finally:
        await client.close()
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(CHUNKS)
    assert message.usage.output_tokens == STREAMED_TOKENS
    await until(lambda: len(d.daemon.inflight) == 0, timeout=5)
    assert_priced_as_estimated(d, await only_row(d), input_tokens=10)
