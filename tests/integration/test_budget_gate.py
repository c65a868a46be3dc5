"""The budget gate: a provider whose month's budget is spent is not sent a
request, however long the request waited; and what the client hears when
the gate left only rate-limited providers."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import pytest

from coderouterd.clock import SystemClock
from coderouterd.config.model import ProviderConfig
from coderouterd.errors import NoProviderAvailableError
from coderouterd.providers.anthropic import AnthropicAdapter
from coderouterd.routing.budget import SKIP_BUDGET, BudgetBook
from coderouterd.routing.call import Call
from coderouterd.routing.cost import cost_of, month_of
from coderouterd.routing.engine import Engine
from coderouterd.routing.plan import Plan
from coderouterd.routing.progress import Reply as EngineReply
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.routing.slots import Slots
from coderouterd.routing.streams import KeepAlive
from coderouterd.routing.upstream import ProviderRoute
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.codecs import codecs_for
from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
BODY = {"model": "m", "max_tokens": 5, "messages": MESSAGES}
# 10 input + 5 output tokens at $1 / $2 a token: $20 a request, the whole budget.
PRICED = """cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: 20
"""


async def post(url: str) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.post(url + "/v1/messages", json=BODY) as resp,
    ):
        await resp.read()
        return resp.status


async def test_a_request_that_waited_for_a_slot_is_not_sent_once_the_budget_ran_out(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`cloud` (max_concurrent: 1) answers A slowly; B waits for the slot.
    A's answer spends the whole budget: B is skipped, not sent and charged."""
    fake_upstream.script(
        Reply(json=anthropic_message("a"), delay_before_headers=0.5),
        Reply(json=anthropic_message("b")),
    )
    extra = "max_concurrent: 1\n" + PRICED
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=extra)))
    first = asyncio.create_task(post(d.url))
    await fake_upstream.wait_for_requests(1, timeout=5)
    second = asyncio.create_task(post(d.url))
    await until(lambda: len(d.daemon.inflight) == 2, timeout=5)
    assert await asyncio.gather(first, second) == [200, 503]
    assert len(fake_upstream.requests) == 1
    assert d.daemon.budget.spent("cloud", month_of(d.daemon.clock.wall())) == pytest.approx(20)


class Spending(BaseObserver):
    """Counts each answer's cost in the book as it finishes, as the request
    recorder does (state/request_recorder.py)."""

    def __init__(self, book: BudgetBook, provider: ProviderConfig, month: str) -> None:
        self._book, self._provider, self._month = book, provider, month

    def request_finished(self, summary: RequestSummary) -> None:
        price = self._provider.cost
        if summary.usage is not None and price is not None:
            cost = cost_of(summary.usage, price).cost_usd
            self._book.add(self._provider.name, self._month, cost, price.monthly_budget_usd)


def call(rid: str) -> Call:
    fields = {k: msgspec.Raw(msgspec.json.encode(v)) for k, v in BODY.items()}
    return Call(rid, "anthropic", fields, {}, stream=False, requested_model="m", profile="p")


async def test_the_engine_skips_a_provider_whose_budget_ran_out_while_a_request_waited(
    fake_upstream: FakeUpstream,
) -> None:
    fake_upstream.script(
        Reply(json=anthropic_message("a"), delay_before_headers=0.5),
        Reply(json=anthropic_message("b")),
    )
    cloud = msgspec.convert(
        {
            "name": "cloud",
            "kind": "anthropic",
            "base_url": fake_upstream.url,
            "model": "m",
            "max_concurrent": 1,
            "cost": {
                "input_tokens_per_million": 1_000_000,
                "output_tokens_per_million": 2_000_000,
                "monthly_budget_usd": 20,
            },
        },
        ProviderConfig,
    )
    clock = SystemClock()
    month = month_of(clock.wall())
    book = BudgetBook()
    slots = Slots()
    slots.configure([cloud])
    adapter = AnthropicAdapter(cloud, api_key=None)
    engine = Engine(
        {"cloud": ProviderRoute(adapter, codecs_for(cloud, ModelCapabilities()))},
        Spending(book, cloud, month),
        clock,
        KeepAlive(30, 30),
        slots,
        budget_spent=lambda p, _arrived: SKIP_BUDGET if book.exhausted(p, month) else None,
    )
    plan = Plan("p", (cloud,), ())
    try:
        first = asyncio.create_task(engine.unary(call("a"), plan))
        await fake_upstream.wait_for_requests(1, timeout=5)
        second = asyncio.create_task(engine.unary(call("b"), plan))
        done = await asyncio.gather(first, second, return_exceptions=True)
    finally:
        await adapter.close()
    assert isinstance(done[0], EngineReply)
    assert done[0].status == 200
    assert isinstance(done[1], NoProviderAvailableError)
    assert [(a.provider, a.reason) for a in done[1].attempts] == [("cloud", SKIP_BUDGET)]
    assert done[1].status == 503
    assert len(fake_upstream.requests) == 1
    assert book.spent("cloud", month) == pytest.approx(20)


async def test_a_provider_skipped_for_its_budget_does_not_hide_a_rate_limit(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Chain [cloud, local]: cloud's budget is spent (the plan skips it), local
    answers 429 with `retry-after: 7`. The only provider sent the request is
    rate-limited: 429 `rate_limit_error` with its retry-after, as when every
    provider is."""
    fake_upstream.script(
        Reply(json=anthropic_message("spend")),
        Reply(
            status=429,
            json=anthropic_error(429, "rate_limit_error", "slow").json,
            headers={"retry-after": "7"},
        ),
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("cloud", fake_upstream.url, extra=PRICED),
            provider_yaml("local", fake_upstream.url),
        )
    )
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.post(d.url + "/v1/messages", json=BODY) as resp:
            assert resp.headers["x-coderouter-provider"] == "cloud"
        async with s.post(d.url + "/v1/messages", json=BODY) as resp:
            body = await resp.json()
            assert resp.status == 429
            assert resp.headers.get("retry-after") == "7"
    assert body["error"]["type"] == "rate_limit_error"
    reasons = [(a["provider"], a["reason"]) for a in body["error"]["attempts"]]
    assert reasons == [("cloud", SKIP_BUDGET), ("local", "http_429")]
