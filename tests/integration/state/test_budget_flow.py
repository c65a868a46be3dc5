"""Costs and monthly budgets end to end: skip, thresholds, rollover, persistence."""

from __future__ import annotations

import datetime

import anthropic
import pytest

from coderouterd.state import reads
from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.clocks import ShiftedClock
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hi"}]
# 10 input + 5 output tokens at $100k / $200k per million: $1 + $1 = $2 a request.
PRICED = """cost:
  input_tokens_per_million: 100000
  output_tokens_per_million: 200000
  monthly_budget_usd: 5
"""


def utc(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=datetime.UTC).timestamp()


async def ask(url: str) -> str:
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(
            model="m", max_tokens=5, messages=MESSAGES
        )
        return raw.headers["x-coderouter-provider"]


async def test_budget_skips_then_rolls_over_and_survives_restart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    clock = ShiftedClock(utc(2026, 11, 30, 23, 59))
    config = chain_yaml(
        provider_yaml("cloud", fake_upstream.url, extra=PRICED),
        provider_yaml("local", fake_upstream.url),
    )
    d = await start_daemon(config, clock=clock)
    # $2, $4 (crosses 80 %), $6 (crosses 100 %): then cloud is skipped.
    assert [await ask(d.url) for _ in range(4)] == ["cloud", "cloud", "cloud", "local"]
    status = d.daemon.status()
    [cloud] = [b for b in status.budgets if b.provider == "cloud"]
    assert (cloud.month, cloud.spent_usd, cloud.blocked) == ("2026-11", pytest.approx(6.0), True)
    # The next UTC month starts from zero.
    clock.move_to(utc(2026, 12, 1, 0, 0, 1))
    assert await ask(d.url) == "cloud"
    clock.move_to(utc(2026, 11, 30, 23, 59, 30))
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        totals = await reads.month_totals(conn, "2026-11")
        events = [(r.event, r.fields.get("percent")) for r in await tail(conn, 50)]
    finally:
        await conn.close()
    assert totals["cloud"].cost_usd == pytest.approx(6.0) and totals["cloud"].requests == 3
    assert ("budget.threshold_crossed", 80) in events and (
        "budget.threshold_crossed",
        100,
    ) in events
    # A restart on the same database still knows the month is spent.
    await d.runner.cleanup()
    await d.state.close()
    again = await start_daemon(config, clock=clock, state_dir=d.state.path.parent)
    assert await ask(again.url) == "local"


async def test_every_provider_over_budget_says_so(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)))
    for _ in range(3):
        await ask(d.url)
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert info.value.status_code == 503
    assert "cloud: budget_exceeded" in info.value.message
    assert len(fake_upstream.requests) == 3
