"""Each budget threshold is audited at most once per provider, month and
budget, whichever way it is crossed again: a start, a reload or a
request's spend. Another budget's thresholds are their own.

The config (test_budget_restart_audit.py) prices `cloud` at $20 a request.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from tests.clocks import ShiftedClock
from tests.conftest import RunningDaemon, StartDaemon
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_budget_restart_audit import (
    MID_MARCH,
    answered_by,
    blocked,
    config,
    crossed,
    crossings,
    restart,
)

pytestmark = pytest.mark.timeout(30)

MARCH = [("cloud", "2027-03", 80, 10), ("cloud", "2027-03", 100, 10)]
APRIL = datetime.datetime(2027, 4, 1, tzinfo=datetime.UTC).timestamp()


async def reload_budget(d: RunningDaemon, url: str, budget: float) -> None:
    d.config_path.write_text(config(url, budget))
    reply = await d.daemon.reload()
    assert reply.ok, reply.problems


async def test_a_reload_back_to_the_budget_after_a_restart_audits_nothing_twice(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """$20 of a $10 budget: March's 80 % and 100 % are audited. A restart
    with a $1000 budget, then a reload back to $10, audits neither again:
    the month's audit log, read at the start, holds them."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    clock = ShiftedClock(MID_MARCH)
    first = await start_daemon(config(fake_upstream.url, 10), clock=clock)
    assert await answered_by(first) == "cloud"
    assert crossed(await crossings(first)) == MARCH

    raised = await restart(first, start_daemon, config(fake_upstream.url, 1000), clock)
    assert crossed(await crossings(raised)) == MARCH

    await reload_budget(raised, fake_upstream.url, 10)
    assert blocked(raised, "cloud") == (20.0, True)
    assert crossed(await crossings(raised)) == MARCH


async def test_a_budget_raised_and_put_back_by_reloads_audits_nothing_twice(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """No restart: the budget is raised to $1000 and put back to $10 by
    reloads, twice; $10's thresholds stay audited once. Lowered to $15, the
    spend passes $15's, audited once too."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(config(fake_upstream.url, 10), clock=ShiftedClock(MID_MARCH))
    assert await answered_by(d) == "cloud"
    assert crossed(await crossings(d)) == MARCH

    for budget in (1000, 10, 1000, 10):
        await reload_budget(d, fake_upstream.url, budget)
    assert crossed(await crossings(d)) == MARCH
    for budget in (15, 1000, 15):
        await reload_budget(d, fake_upstream.url, budget)
    assert blocked(d, "cloud") == (20.0, True)
    fifteen = [("cloud", "2027-03", 80, 15), ("cloud", "2027-03", 100, 15)]
    assert crossed(await crossings(d)) == [*MARCH, *fifteen]


async def test_spend_passing_a_raised_budget_audits_that_budgets_thresholds(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """$20 of a $10 budget: 80 % and 100 % audited. The budget is raised to
    $30 and `cloud` answers again: $40 passes 80 % and 100 % of $30, which
    blocks it: the operator who raised it hears of that too."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(config(fake_upstream.url, 10), clock=ShiftedClock(MID_MARCH))
    assert await answered_by(d) == "cloud"
    await reload_budget(d, fake_upstream.url, 30)
    assert await answered_by(d) == "cloud"
    assert blocked(d, "cloud") == (40.0, True)
    assert await answered_by(d) == "local"
    thirty = [("cloud", "2027-03", 80, 30), ("cloud", "2027-03", 100, 30)]
    assert crossed(await crossings(d)) == [*MARCH, *thirty]


async def test_a_new_month_audits_its_own_thresholds_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """March's thresholds do not stand for April's: April's spend crosses
    80 % and 100 % again, audited for April, and a reload raising the
    budget and putting it back audits neither again."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    clock = ShiftedClock(MID_MARCH)
    d = await start_daemon(config(fake_upstream.url, 10), clock=clock)
    assert await answered_by(d) == "cloud"

    clock.move_to(APRIL + 3600)
    assert await answered_by(d) == "cloud"
    april = [("cloud", "2027-04", 80, 10), ("cloud", "2027-04", 100, 10)]
    assert crossed(await crossings(d)) == [*MARCH, *april]

    await reload_budget(d, fake_upstream.url, 1000)
    await reload_budget(d, fake_upstream.url, 10)
    assert crossed(await crossings(d)) == [*MARCH, *april]


async def test_a_request_of_last_month_answered_in_this_one_is_audited_in_its_month(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """B and A arrive on March 31st; A's $20 passes both thresholds of the
    $10 budget, audited for March. The budget is raised to $25 and the
    month turns while B is answered slowly; C, in April, crosses April's
    80 %. B's $20, spent in March, passes 100 % of $25: audited for March,
    once, and April's audit has not made the book forget March's."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    fake_upstream.script(Reply(json=anthropic_message("b"), delay_before_headers=2.0))
    clock = ShiftedClock(APRIL - 60)
    d = await start_daemon(config(fake_upstream.url, 10), clock=clock)
    b = asyncio.create_task(answered_by(d))
    await fake_upstream.wait_for_requests(1, timeout=5)
    # B arrived half a second before this: moved forward by APRIL - mark, it
    # is still March's, with room for the time its row takes to be filed.
    await asyncio.sleep(0.5)
    mark = clock.wall()
    assert await answered_by(d) == "cloud"
    assert crossed(await crossings(d)) == MARCH
    await reload_budget(d, fake_upstream.url, 25)

    clock.move_to(clock.wall() + APRIL - mark)
    assert clock.wall() > APRIL
    assert await answered_by(d) == "cloud"
    april = [("cloud", "2027-04", 80, 25)]
    assert crossed(await crossings(d)) == [*MARCH, *april]

    assert await b == "cloud"
    # April's spend is C's alone: B's $20 is March's.
    assert blocked(d, "cloud") == (20.0, False)
    b_crossed = [("cloud", "2027-03", 100, 25)]
    assert crossed(await crossings(d)) == [*MARCH, *april, *b_crossed]
    await reload_budget(d, fake_upstream.url, 1000)
    await reload_budget(d, fake_upstream.url, 25)
    assert crossed(await crossings(d)) == [*MARCH, *april, *b_crossed]
