"""Requests that outlive a reload: priced by the config they finished under,
stopped by the budget in force when their attempt starts, and no budget
threshold crossed twice by a provider a reload took out and put back."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from coderouterd.routing.cost import month_of
from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from coderouterd.status import status_of
from coderouterd.telemetry import deferred as deferred_module
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_metrics import at, scrape

pytestmark = pytest.mark.timeout(30)

BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}


def priced(budget: float | None = None, *, per_million: int = 1_000_000, extra: str = "") -> str:
    """At the default prices, $1 per input token and $2 per output token:
    10 in and 5 out is $20."""
    cap = "" if budget is None else f"\n  monthly_budget_usd: {budget}"
    return f"""cost:
  input_tokens_per_million: {per_million}
  output_tokens_per_million: {2 * per_million}{cap}
{extra}"""


async def post(url: str, *, stream: bool = False) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.post(url + "/v1/messages", json={**BODY, "stream": stream}) as resp,
    ):
        await resp.read()
        return resp.status


async def answered(d: RunningDaemon) -> None:
    """One request answered, and its summary handed to the observers."""
    assert await post(d.url) == 200
    await until(lambda: len(d.daemon.inflight) == 0, timeout=5)


async def reload(d: RunningDaemon, yaml: str) -> None:
    d.config_path.write_text(yaml)
    reply = await d.daemon.reload()
    assert reply.ok, reply.problems


def spent(d: RunningDaemon, provider: str) -> float:
    return d.daemon.budget.spent(provider, month_of(d.daemon.clock.wall()))


async def crossings(d: RunningDaemon) -> list[tuple[str, int]]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = await tail(conn, 100)
    finally:
        await conn.close()
    return [
        (r.fields["provider"], r.fields["percent"])
        for r in rows
        if r.event == "budget.threshold_crossed"
    ]


async def test_metrics_price_an_answer_finished_before_a_price_change_as_the_request_log_does(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No hand-over on a timer: the answer's summary is still queued at the reload.
    monkeypatch.setattr(deferred_module, "INTERVAL_S", 3600.0)
    fake_upstream.default = Reply(json=anthropic_message("ok"))

    def config(per_million: int) -> str:
        return chain_yaml(
            provider_yaml("cloud", fake_upstream.url, extra=priced(per_million=per_million))
        )

    d = await start_daemon(config(1_000_000))
    await answered(d)
    await reload(d, config(2_000_000))
    _, samples, _ = await scrape(d.url)
    assert spent(d, "cloud") == pytest.approx(20.0)
    assert at(samples, "cost_usd_total", provider="cloud") == pytest.approx(20.0)
    # One at the new prices: $40 more, in both.
    await answered(d)
    _, samples, _ = await scrape(d.url)
    assert spent(d, "cloud") == pytest.approx(60.0)
    assert at(samples, "cost_usd_total", provider="cloud") == pytest.approx(60.0)


async def test_a_budget_set_to_zero_by_reload_stops_a_request_waiting_for_a_slot(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The first answer holds cloud's one slot until the reload is done.
    resume = asyncio.Event()
    events = anthropic_text_stream(["a", "b"])
    fake_upstream.script(
        Reply(events=events, pause_after_frames=2, resume=resume),
        Reply(json=anthropic_message("never sent")),
    )

    def config(budget: float) -> str:
        extra = priced(budget, extra="max_concurrent: 1")
        return chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=extra))

    d = await start_daemon(config(1000))
    first = asyncio.create_task(post(d.url, stream=True))
    await fake_upstream.wait_for_requests(1, timeout=5)
    second = asyncio.create_task(post(d.url))

    def waiting() -> int:
        slots = status_of(d.daemon).providers[0].slots
        return 0 if slots is None else slots.waiting

    await until(lambda: waiting() == 1, timeout=5)
    await reload(d, config(0))
    resume.set()
    assert await asyncio.gather(first, second) == [200, 503]
    assert len(fake_upstream.requests) == 1, "a provider with a budget of 0 was sent a request"
    assert spent(d, "cloud") == pytest.approx(20.0)


async def test_a_provider_taken_out_and_put_back_does_not_cross_its_thresholds_again(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))

    def config(*, cloud: bool, budget: float = 10) -> str:
        blocks = [provider_yaml("local", fake_upstream.url)]
        if cloud:
            blocks.insert(0, provider_yaml("cloud", fake_upstream.url, extra=priced(budget)))
        return chain_yaml(*blocks)

    d = await start_daemon(config(cloud=True))
    await answered(d)
    assert spent(d, "cloud") == pytest.approx(20.0)
    assert await crossings(d) == [("cloud", 80), ("cloud", 100)]
    await reload(d, config(cloud=False))
    await reload(d, config(cloud=True))
    assert await crossings(d) == [("cloud", 80), ("cloud", 100)]
    # Put back with a budget its spend had not crossed: those are crossed now.
    await reload(d, config(cloud=False))
    await reload(d, config(cloud=True, budget=100))
    await reload(d, config(cloud=False))
    await reload(d, config(cloud=True, budget=22))
    assert await crossings(d) == [("cloud", 80), ("cloud", 100), ("cloud", 80)]
