"""A restart in the last moments of a UTC month: the spend loaded at start is
booked under the month it was read for, so the next month starts from zero
even when it begins while the daemon is starting."""

from __future__ import annotations

import datetime
import time

import anthropic

from coderouterd.state import reads
from coderouterd.state.db import open_db
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hi"}]
# 10 input + 5 output tokens at $100k / $200k per million: $2 a request.
PRICED = """cost:
  input_tokens_per_million: 100000
  output_tokens_per_million: 200000
  monthly_budget_usd: 5
"""


def utc(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=datetime.UTC).timestamp()


class TickingClock:
    """Real monotonic time; a wall clock that starts at `wall` and moves on
    `tick_s` each time it is read, as the real one moves on between two
    reads (a start-up's reads of a large database take tens of ms)."""

    def __init__(self, wall: float, tick_s: float) -> None:
        self._wall = wall
        self._tick = tick_s

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        now = self._wall
        self._wall += self._tick
        return now

    def set(self, wall: float, tick_s: float = 0.0) -> None:
        self._wall = wall
        self._tick = tick_s


async def ask(url: str) -> str:
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(
            model="m", max_tokens=5, messages=MESSAGES
        )
        return raw.headers["x-coderouter-provider"]


async def test_a_restart_as_the_month_turns_starts_the_new_month_from_zero(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    config = chain_yaml(
        provider_yaml("cloud", fake_upstream.url, extra=PRICED),
        provider_yaml("local", fake_upstream.url),
    )
    # November's $5 budget of `cloud` spent ($6): the fourth request goes on.
    first = await start_daemon(config, clock=TickingClock(utc(2026, 11, 30, 12, 0), 0.0))
    assert [await ask(first.url) for _ in range(4)] == ["cloud", "cloud", "cloud", "local"]
    await first.runner.cleanup()
    await first.state.close()

    # Restarted 15 ms before midnight, each read of the wall clock 10 ms
    # after the last: December begins while the state is being opened.
    clock = TickingClock(utc(2026, 11, 30, 23, 59, 59) + 0.985, 0.01)
    again = await start_daemon(config, clock=clock, state_dir=first.state.path.parent)
    clock.set(utc(2026, 12, 1, 0, 0, 5))

    [cloud] = [b for b in again.daemon.status().budgets if b.provider == "cloud"]
    assert (cloud.month, cloud.spent_usd, cloud.blocked) == ("2026-12", 0.0, False), cloud
    assert await ask(again.url) == "cloud"
    await again.state.writer.flush()
    conn = await open_db(again.state.path, readonly=True)
    try:
        november = await reads.month_totals(conn, "2026-11")
        december = await reads.month_totals(conn, "2026-12")
    finally:
        await conn.close()
    assert (november["cloud"].requests, november["cloud"].cost_usd) == (3, 6.0)
    assert december["cloud"].requests == 1
