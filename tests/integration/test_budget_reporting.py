"""Budgets as /metrics, ctl status and the audit log show them, and spend
across reloads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from coderouterd.routing.cost import month_of
from coderouterd.state import reads
from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}
THRESHOLD = "budget.threshold_crossed"


def priced(budget: float) -> str:
    """$1 per input token, $2 per output token: 10 in and 5 out is $20."""
    return f"""cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: {budget}
"""


async def post(url: str, body: dict[str, Any] = BODY) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.post(url + "/v1/messages", json=body) as resp,
    ):
        await resp.read()
        return resp.status


def spent(d: RunningDaemon, provider: str) -> float:
    return d.daemon.budget.spent(provider, month_of(d.daemon.clock.wall()))


async def thresholds(d: RunningDaemon) -> list[tuple[str, int, float, float]]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = [r.fields for r in await tail(conn, 100) if r.event == THRESHOLD]
    finally:
        await conn.close()
    return [(f["provider"], f["percent"], f["spent_usd"], f["budget_usd"]) for f in rows]


async def test_a_zero_budget_is_shown_as_a_budget_spent(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(
        chain_yaml(
            provider_yaml("cloud", fake_upstream.url, extra=priced(0)),
            provider_yaml("local", fake_upstream.url),
        )
    )
    async with aiohttp.ClientSession() as s, s.get(d.url + "/metrics") as resp:
        text = await resp.text()
    assert 'coderouterd_budget_usd{provider="cloud"} 0' in text
    [cloud] = [b for b in d.daemon.status().budgets if b.provider == "cloud"]
    assert (cloud.budget_usd, cloud.percent, cloud.blocked) == (0, 100.0, True)


async def test_a_stream_running_when_a_reload_drops_its_provider_is_still_charged(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The stream finishes on the retired provider, which bills it: its row
    and the month's spend count it, so a reload that brings the provider
    back finds its budget as it was."""
    resume = asyncio.Event()
    fake_upstream.script(
        Reply(
            events=anthropic_text_stream(["a", "b"], input_tokens=10, output_tokens=5),
            pause_after_frames=3,
            resume=resume,
        )
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("cloud", fake_upstream.url, extra=priced(1000)),
            provider_yaml("local", fake_upstream.url),
        )
    )
    streaming = asyncio.create_task(post(d.url, {**BODY, "stream": True}))
    await fake_upstream.wait_for_requests(1, timeout=5)
    d.config_path.write_text(chain_yaml(provider_yaml("local", fake_upstream.url)))
    assert (await d.daemon.reload()).ok
    resume.set()
    assert await streaming == 200
    await until(lambda: len(d.daemon.inflight) == 0, timeout=5)
    assert spent(d, "cloud") == pytest.approx(20.0)
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        [(rid,)] = await conn.execute_fetchall("SELECT id FROM requests")
        row = await reads.request(conn, rid)
        totals = await reads.month_totals(conn, month_of(time.time()))
    finally:
        await conn.close()
    assert row is not None
    assert (row.provider, row.cost_usd) == ("cloud", pytest.approx(20.0))
    assert totals["cloud"].cost_usd == pytest.approx(20.0)


async def test_a_reload_lowering_a_budget_under_the_spend_audits_the_thresholds_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))

    def config(budget: float) -> str:
        return chain_yaml(
            provider_yaml("cloud", fake_upstream.url, extra=priced(budget)),
            provider_yaml("local", fake_upstream.url),
        )

    d = await start_daemon(config(100))
    assert await post(d.url) == 200
    assert spent(d, "cloud") == pytest.approx(20.0)
    assert await thresholds(d) == []
    d.config_path.write_text(config(10))
    assert (await d.daemon.reload()).ok
    [cloud] = [b for b in d.daemon.status().budgets if b.provider == "cloud"]
    assert cloud.blocked
    crossed = [("cloud", 80, 20.0, 10.0), ("cloud", 100, 20.0, 10.0)]
    assert await thresholds(d) == crossed
    # The same budget again passes nothing new; a higher one then a lower one does.
    assert (await d.daemon.reload()).ok
    assert await thresholds(d) == crossed
    for budget in (1000, 22):
        d.config_path.write_text(config(budget))
        assert (await d.daemon.reload()).ok
    assert await thresholds(d) == [*crossed, ("cloud", 80, 20.0, 22.0)]
