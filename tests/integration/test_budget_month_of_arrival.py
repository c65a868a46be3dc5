"""A request is checked against the budget of the month it arrived in, the
month its spend is filed under, also when its attempt starts after midnight."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import aiohttp
import pytest

from coderouterd.routing.budget import SKIP_BUDGET
from coderouterd.state import reads
from coderouterd.state.db import open_db
from tests.clocks import ShiftedClock
from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}
# 10 input + 5 output tokens at $1 / $2 a token: $20 a request, the whole budget.
PRICED = """max_concurrent: 1
cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: 20
"""


MIDNIGHT = datetime.datetime(2027, 2, 1, tzinfo=datetime.UTC).timestamp()


async def post(url: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.post(url + "/v1/messages", json=BODY) as resp,
    ):
        return resp.status, await resp.json()


async def test_a_request_that_waited_for_a_slot_across_midnight_is_held_to_its_months_budget(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`cloud` (max_concurrent: 1, $20 budget) answers A, which arrived a
    second before February, slowly; B arrives right after it and waits for
    the slot. A's $20 spends January's budget though it is answered in
    February. B arrived in January too: when the slot frees after midnight
    it is not sent (503, cloud skipped as `budget_exceeded`), and January's
    spend stays $20 instead of $40 against its $20 budget."""
    fake_upstream.script(
        Reply(json=anthropic_message("a"), delay_before_headers=1.5),
        Reply(json=anthropic_message("b")),
    )
    clock = ShiftedClock(MIDNIGHT - 1)
    d = await start_daemon(
        chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)), clock=clock
    )
    first = asyncio.create_task(post(d.url))
    await fake_upstream.wait_for_requests(1, timeout=5)
    second = asyncio.create_task(post(d.url))
    await until(lambda: len(d.daemon.inflight) == 2, timeout=5)
    assert clock.wall() < MIDNIGHT  # both arrived in January
    (a_status, _), (b_status, b_body) = await asyncio.gather(first, second)
    assert clock.wall() >= MIDNIGHT
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        january = await reads.month_totals(conn, "2027-01")
        february = await reads.month_totals(conn, "2027-02")
    finally:
        await conn.close()
    assert (a_status, b_status, len(fake_upstream.requests)) == (200, 503, 1)
    reasons = [(a["provider"], a["reason"]) for a in b_body["error"]["attempts"]]
    assert reasons == [("cloud", SKIP_BUDGET)]
    assert january["cloud"].cost_usd == pytest.approx(20.0)
    assert "cloud" not in february
