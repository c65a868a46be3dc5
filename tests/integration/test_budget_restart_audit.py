"""A start audits the budget thresholds the month's spend passes under the
configured budgets that the month's audit log does not hold yet: a budget
lowered under the spend while the daemon was stopped is audited as at a
reload, and a restart with the same budgets audits nothing again."""

from __future__ import annotations

import datetime
from typing import Any

import aiohttp
import pytest

from coderouterd.clock import Clock
from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.clocks import ShiftedClock
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
THRESHOLD = "budget.threshold_crossed"
# Far from a month's end, whenever the test runs.
MID_MARCH = datetime.datetime(2027, 3, 15, tzinfo=datetime.UTC).timestamp()


def config(url: str, budget: float) -> str:
    """$1 per input token, $2 per output token: 10 in and 5 out is $20."""
    priced = f"""cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: {budget}
"""
    return chain_yaml(provider_yaml("cloud", url, extra=priced), provider_yaml("local", url))


async def answered_by(d: RunningDaemon) -> str:
    async with aiohttp.ClientSession() as s, s.post(d.url + "/v1/messages", json=BODY) as r:
        assert r.status == 200
        return r.headers["x-coderouter-provider"]


async def restart(
    d: RunningDaemon, start_daemon: StartDaemon, yaml: str, clock: Clock | None = None
) -> RunningDaemon:
    """Stop `d` and start a daemon on its database under `yaml`."""
    await d.runner.cleanup()
    await d.state.close()
    return await start_daemon(yaml, state_dir=d.state.path.parent, clock=clock)


async def crossings(d: RunningDaemon) -> list[dict[str, Any]]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = await tail(conn, 100)
    finally:
        await conn.close()
    return [r.fields for r in rows if r.event == THRESHOLD]


def crossed(events: list[dict[str, Any]]) -> list[tuple[str, str, int, float]]:
    return [(e["provider"], e["month"], e["percent"], e["budget_usd"]) for e in events]


def blocked(d: RunningDaemon, provider: str) -> tuple[float, bool]:
    [b] = [b for b in d.daemon.status().budgets if b.provider == provider]
    return b.spent_usd, b.blocked


async def test_a_budget_lowered_under_the_spend_across_a_restart_is_audited_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """$20 spent of a $1000 budget; the operator lowers it to $10 and restarts
    the daemon instead of reloading it. The start audits `cloud` crossing
    80 % and 100 % of its $10 budget (it is blocked: requests go to local);
    a second restart with the same config audits neither again."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    clock = ShiftedClock(MID_MARCH)
    month = "2027-03"
    first = await start_daemon(config(fake_upstream.url, 1000), clock=clock)
    assert await answered_by(first) == "cloud"

    lowered = await restart(first, start_daemon, config(fake_upstream.url, 10), clock)
    assert blocked(lowered, "cloud") == (20.0, True)
    assert await answered_by(lowered) == "local"
    expected = [("cloud", month, 80, 10), ("cloud", month, 100, 10)]
    assert crossed(await crossings(lowered)) == expected
    assert [e["spent_usd"] for e in await crossings(lowered)] == [20.0, 20.0]

    again = await restart(lowered, start_daemon, config(fake_upstream.url, 10), clock)
    assert blocked(again, "cloud") == (20.0, True)
    assert crossed(await crossings(again)) == expected


async def test_a_restart_audits_the_thresholds_of_a_lowered_budget(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """$20 spent of a $25 budget crosses its 80 %, audited then; the budget
    is lowered to $10 across a restart: the start audits $10's 80 % and
    100 %, and the next start nothing."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    clock = ShiftedClock(MID_MARCH)
    month = "2027-03"
    first = await start_daemon(config(fake_upstream.url, 25), clock=clock)
    assert await answered_by(first) == "cloud"
    assert crossed(await crossings(first)) == [("cloud", month, 80, 25)]

    lowered = await restart(first, start_daemon, config(fake_upstream.url, 10), clock)
    expected = [("cloud", month, 80, 25), ("cloud", month, 80, 10), ("cloud", month, 100, 10)]
    assert crossed(await crossings(lowered)) == expected
    again = await restart(lowered, start_daemon, config(fake_upstream.url, 10), clock)
    assert crossed(await crossings(again)) == expected


async def test_thresholds_audited_in_an_earlier_month_do_not_stand_for_this_ones(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """January: $20 spent of a $10 budget, both thresholds audited. February:
    $20 spent of a $1000 budget; the budget is lowered to $10 across a
    restart. February's 80 % and 100 % are audited at the start, though
    January's are in the log."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    clock = ShiftedClock(datetime.datetime(2027, 1, 15, tzinfo=datetime.UTC).timestamp())
    first = await start_daemon(config(fake_upstream.url, 10), clock=clock)
    assert await answered_by(first) == "cloud"
    january = [("cloud", "2027-01", 80, 10), ("cloud", "2027-01", 100, 10)]
    assert crossed(await crossings(first)) == january

    clock.move_to(datetime.datetime(2027, 2, 15, tzinfo=datetime.UTC).timestamp())
    raised = await restart(first, start_daemon, config(fake_upstream.url, 1000), clock)
    assert await answered_by(raised) == "cloud"
    assert crossed(await crossings(raised)) == january

    lowered = await restart(raised, start_daemon, config(fake_upstream.url, 10), clock)
    assert blocked(lowered, "cloud") == (20.0, True)
    assert crossed(await crossings(lowered)) == [
        *january,
        ("cloud", "2027-02", 80, 10),
        ("cloud", "2027-02", 100, 10),
    ]
