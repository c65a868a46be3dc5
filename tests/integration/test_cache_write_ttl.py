"""Cache writes that live an hour are priced as such: Anthropic reports them
apart (`usage.cache_creation.ephemeral_1h_input_tokens`) and bills them at
2x the input price, against 1.25x for 5-minute writes."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_budget_usage import MESSAGES, PRICED, only_row, spent

# 10 input, 5 output, 100 written to the cache: 40 for 5 minutes, 60 for an hour.
USAGE = {
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_creation_input_tokens": 100,
    "cache_read_input_tokens": 0,
    "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 60},
}
# $1 an input token, $2 an output token: 10 + 10 + 40 x 1.25 + 60 x 2.
COST = 190.0


def split_stream(where: str = "message_start") -> list[Any]:
    """The split in message_start, or only in the final message_delta (which
    repeats every count, as Anthropic's does)."""
    events = anthropic_text_stream(["hello"], input_tokens=10, output_tokens=5)
    if where == "message_start":
        events[0][1]["message"]["usage"] = dict(USAGE, output_tokens=1)
    else:
        next(data for name, data in events if name == "message_delta")["usage"] = USAGE
    return events


async def test_a_unary_answer_prices_hour_long_writes_at_their_premium(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=dict(anthropic_message("hi"), usage=USAGE)))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        message = await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 60
    row = await only_row(d)
    assert row.cost_usd == pytest.approx(COST)
    assert spent(d, "cloud") == pytest.approx(COST)


@pytest.mark.parametrize("where", ["message_start", "message_delta"])
async def test_a_stream_prices_hour_long_writes_for_an_anthropic_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, where: str
) -> None:
    fake_upstream.script(Reply(events=split_stream(where)))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    async with (
        anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client,
        client.messages.stream(model="m", max_tokens=5, messages=MESSAGES) as stream,
    ):
        await stream.get_final_message()
    row = await only_row(d)
    assert (row.cache_creation_input_tokens, row.output_tokens) == (100, 5)
    assert row.cost_usd == pytest.approx(COST)


async def test_a_stream_prices_hour_long_writes_for_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=split_stream()))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        [chunk async for chunk in stream]
    row = await only_row(d)
    assert row.cost_usd == pytest.approx(COST)
    assert spent(d, "cloud") == pytest.approx(COST)


async def test_the_hour_premium_is_configurable(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=dict(anthropic_message("hi"), usage=USAGE)))
    priced = PRICED.replace("cost:\n", "cost:\n  cache_creation_1h_premium: 3\n")
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=priced)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    row = await only_row(d)
    assert row.cost_usd == pytest.approx(COST + 60)


@pytest.mark.parametrize("odd", [0, "n/a", [60], {"ephemeral_1h_input_tokens": "60"}])
# The shape reaches the client as sent, and its SDK's model warns of it.
@pytest.mark.filterwarnings("ignore::UserWarning")
async def test_a_split_of_another_shape_costs_nothing_but_itself(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, odd: object
) -> None:
    """A server of its own making may send `cache_creation` in any shape: the
    four counts are accounted as ever, the writes at the 5-minute premium."""
    events = split_stream()
    events[0][1]["message"]["usage"] = dict(USAGE, output_tokens=1, cache_creation=odd)
    fake_upstream.script(
        Reply(json=dict(anthropic_message("hi"), usage=dict(USAGE, cache_creation=odd)))
    )
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
        async with client.messages.stream(model="m", max_tokens=5, messages=MESSAGES) as stream:
            await stream.get_final_message()
    await d.state.writer.flush()
    # 10 + 10 + 100 x 1.25, twice.
    assert spent(d, "cloud") == pytest.approx(2 * 145.0)
