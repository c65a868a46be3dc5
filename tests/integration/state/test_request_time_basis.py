"""One request, one instant: the request log (`requests`, `usage`), the
replay list and the month's spend all file a request under when it arrived."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import aiohttp

from coderouterd.state import reads
from coderouterd.state.db import open_db
from tests.clocks import ShiftedClock
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.daemon_cli import cli_json
from tests.integration.state.test_budget_flow import utc

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
# 10 input + 5 output tokens at $1 / $2 per token: $20 a request.
PRICED = """cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: 1000
"""
# How long the backend takes to answer.
SLOW_S = 1.5


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


async def post(url: str) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages", json=BODY) as resp,
    ):
        assert resp.status == 200, await resp.text()
        await resp.read()
        return resp.headers["x-request-id"]


async def test_a_slow_request_has_one_time_in_requests_and_in_the_replay_list(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("ok"), delay_before_headers=SLOW_S))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url)))
    rid = await post(d.url)

    [logged] = await cli_json(d, tmp_path, "requests")
    [recorded] = await cli_json(d, tmp_path, "replay", "list")
    assert logged["id"] == recorded["request_id"] == rid
    assert abs(recorded["ts"] - logged["ts"]) < 0.1, (logged["ts"], recorded["ts"])
    # After its arrival, before its answer: neither list has it.
    between = iso(logged["ts"] + SLOW_S / 2)
    assert await cli_json(d, tmp_path, "requests", "--since", between) == []
    assert await cli_json(d, tmp_path, "replay", "list", "--since", between) == []


async def test_a_request_answered_in_the_next_month_is_spent_in_the_month_it_arrived(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """It arrives at 23:59:59 on January 31 and is answered in February: the
    log files it under January 31, so January's spend holds its cost, as
    the budget totals a daemon started in January loads; February's, which
    `ctl status` and /metrics show now, holds none, as `usage` finds no
    February request."""
    fake_upstream.script(Reply(json=anthropic_message("ok"), delay_before_headers=SLOW_S))
    clock = ShiftedClock(time.time())
    d = await start_daemon(
        chain_yaml(provider_yaml("cloud", fake_upstream.url, extra=PRICED)), clock=clock
    )
    clock.move_to(utc(2027, 1, 31, 23, 59, 59) + 0.2)
    await post(d.url)
    assert clock.wall() >= utc(2027, 2, 1)

    days = await cli_json(d, tmp_path, "usage", "--by", "day")
    assert [(g["key"], g["cost_usd"]) for g in days] == [("2027-01-31", 20.0)]
    assert await cli_json(d, tmp_path, "usage", "--since", "2027-02-01") == []
    budgets = {b.month: b.spent_usd for b in d.daemon.status().budgets if b.provider == "cloud"}
    assert budgets == {"2027-02": 0.0}
    conn = await open_db(d.state.path, readonly=True)
    try:
        january = await reads.month_totals(conn, "2027-01")
        february = await reads.month_totals(conn, "2027-02")
    finally:
        await conn.close()
    assert (january["cloud"].cost_usd, january["cloud"].requests, february) == (20.0, 1, {})
