"""A provider's slots (max_concurrent): taken now or in line, first come first
served, given back exactly once whatever cancels a waiter, and changed by a
reload in place."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from coderouterd.config.model import ProviderConfig
from coderouterd.routing.slots import Gate, Slots, take_first


def provider(name: str, limit: int | None) -> ProviderConfig:
    return ProviderConfig(name=name, base_url="http://127.0.0.1:1", model="m", max_concurrent=limit)


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_slot_is_taken_now_while_one_is_free_and_nobody_waits() -> None:
    gate = Gate(2)
    assert gate.take_now() and gate.take_now()
    assert not gate.take_now()
    assert (gate.in_use, gate.waiting) == (2, 0)
    gate.give_back()
    assert gate.take_now()


async def test_waiters_are_served_in_order_of_arrival() -> None:
    gate = Gate(1)
    assert gate.take_now()
    served: list[int] = []

    async def waiter(n: int) -> None:
        await gate.take()
        served.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await settle()
    assert gate.waiting == 3 and served == []
    # Nobody jumps the line: a free slot goes to the first waiter.
    gate.give_back()
    assert not gate.take_now()
    await settle()
    assert served == [0] and (gate.in_use, gate.waiting) == (1, 2)
    gate.give_back()  # 0 is done: 1 comes in
    gate.give_back()  # 1 is done: 2 comes in
    await asyncio.gather(*tasks)
    assert served == [0, 1, 2] and (gate.in_use, gate.waiting) == (1, 0)


async def cancelled_in_line(gate: Gate, first: asyncio.Task[None]) -> None:
    first.cancel()
    await settle()
    assert gate.waiting == 1  # it left the line, taking nothing
    gate.give_back()


async def cancelled_as_its_slot_came(gate: Gate, first: asyncio.Task[None]) -> None:
    # The slot is granted to `first`, which is cancelled before it resumes.
    gate.give_back()
    first.cancel()


async def cancelled_then_a_slot_freed(gate: Gate, first: asyncio.Task[None]) -> None:
    # A slot freed before `first` ran its own clean-up: it is skipped.
    first.cancel()
    gate.give_back()


@pytest.mark.parametrize(
    "events", [cancelled_in_line, cancelled_as_its_slot_came, cancelled_then_a_slot_freed]
)
async def test_a_cancelled_waiter_never_keeps_a_slot(
    events: Callable[[Gate, asyncio.Task[None]], Awaitable[None]],
) -> None:
    gate = Gate(1)
    assert gate.take_now()
    first = asyncio.create_task(gate.take())
    second = asyncio.create_task(gate.take())
    await settle()
    await events(gate, first)
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert (gate.in_use, gate.waiting) == (1, 0)


async def test_a_reload_changes_limits_in_place_and_a_larger_one_lets_waiters_in() -> None:
    slots = Slots()
    slots.configure([provider("local", 1), provider("cloud", None)])
    assert slots.gate("cloud") is None
    gate = slots.gate("local")
    assert gate is not None and gate.take_now()
    waiter = asyncio.create_task(gate.take())
    await settle()
    slots.configure([provider("local", 2)])
    assert slots.gate("local") is gate
    await waiter
    assert (gate.limit, gate.in_use, gate.waiting) == (2, 2, 0)
    # A smaller limit lets nobody new in until enough slots are given back.
    slots.configure([provider("local", 1)])
    gate.give_back()
    assert not gate.take_now()
    gate.give_back()
    assert gate.take_now()
    # Its limit gone, the provider is not gated any more.
    slots.configure([provider("local", None)])
    assert slots.gate("local") is None


async def test_held_waits_for_a_slot_and_gives_it_back() -> None:
    slots = Slots()
    slots.configure([provider("local", 1)])
    gate = slots.gate("local")
    assert gate is not None
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def hold() -> None:
        async with slots.held("local"):
            inside.set()
            await leave.wait()

    holder = asyncio.create_task(hold())
    await inside.wait()
    second = asyncio.create_task(hold())
    await settle()
    assert (gate.in_use, gate.waiting) == (1, 1)
    leave.set()
    await asyncio.gather(holder, second)
    assert (gate.in_use, gate.waiting) == (0, 0)
    # Without a limit, held() is no gate at all.
    async with slots.held("cloud"):
        pass


def full(n: int) -> list[Gate]:
    gates = [Gate(1) for _ in range(n)]
    for g in gates:
        assert g.take_now()
    return gates


async def test_take_first_holds_whichever_slot_comes_first_and_leaves_the_other_lines() -> None:
    gates = full(3)
    taking = asyncio.create_task(take_first(gates))
    await settle()
    assert [g.waiting for g in gates] == [1, 1, 1]
    gates[2].give_back()
    assert await taking == 2
    await settle()
    assert [(g.in_use, g.waiting) for g in gates] == [(1, 0), (1, 0), (1, 0)]
    # The places left behind are gone: a slot freed now goes to nobody.
    gates[0].give_back()
    assert gates[0].take_now()


async def test_take_first_given_two_at_once_keeps_the_earlier_and_gives_back_the_other() -> None:
    gates = full(2)
    taking = asyncio.create_task(take_first(gates))
    await settle()
    gates[1].give_back()
    gates[0].give_back()
    assert await taking == 0
    await settle()
    assert [(g.in_use, g.waiting) for g in gates] == [(1, 0), (0, 0)]


@pytest.mark.parametrize("freed", [None, 0, 1])
async def test_take_first_cancelled_keeps_no_slot_and_no_place(freed: int | None) -> None:
    gates = full(2)
    taking = asyncio.create_task(take_first(gates))
    await settle()
    if freed is not None:
        gates[freed].give_back()  # granted, but cancelled before it resumes
    taking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taking
    await settle()
    in_use = [1, 1] if freed is None else [int(i != freed) for i in range(2)]
    assert [(g.in_use, g.waiting) for g in gates] == [(n, 0) for n in in_use]


async def test_take_first_of_free_gates_takes_the_first_at_once() -> None:
    gates = [Gate(1), Gate(1)]
    assert await take_first(gates) == 0
    await settle()
    assert [g.in_use for g in gates] == [1, 0]


async def test_a_provider_that_loses_its_limit_lets_its_line_in_and_keeps_counting() -> None:
    slots = Slots()
    slots.configure([provider("local", 1)])
    gate = slots.gate("local")
    assert gate is not None and gate.take_now()
    waiters = [asyncio.create_task(gate.take()) for _ in range(2)]
    await settle()
    slots.configure([provider("local", None)])
    await asyncio.gather(*waiters)
    assert slots.gate("local") is None, "not gated: ctl status shows no slots"
    assert slots.kept("local") is gate and gate.take_now()
    assert (gate.in_use, gate.waiting) == (4, 0)
    # The limit back, the four running count against it.
    slots.configure([provider("local", 2)])
    assert slots.gate("local") is gate and not gate.take_now()
    for _ in range(2):
        gate.give_back()
    assert not gate.take_now()
    gate.give_back()
    assert gate.take_now()


async def test_a_provider_gone_from_the_config_and_back_keeps_its_gate() -> None:
    slots = Slots()
    slots.configure([provider("local", 1)])
    gate = slots.gate("local")
    assert gate is not None and gate.take_now()
    slots.configure([provider("cloud", None)])
    assert slots.gate("local") is None and slots.kept("local") is gate
    slots.configure([provider("local", 1)])
    assert slots.gate("local") is gate and not gate.take_now()
    assert (gate.limit, gate.in_use) == (1, 1)


async def test_a_provider_that_never_had_a_limit_costs_a_request_no_gate() -> None:
    slots = Slots()
    slots.configure([provider("cloud", None)])
    slots.configure([provider("cloud", None)])
    assert slots.kept("cloud") is None
    async with slots.held("cloud"):
        pass
    # Its first limit starts a gate that counts from now on.
    slots.configure([provider("cloud", 1)])
    gate = slots.kept("cloud")
    assert gate is not None and (gate.limit, gate.in_use) == (1, 0)


async def test_held_counts_a_probe_of_a_provider_that_lost_its_limit() -> None:
    slots = Slots()
    slots.configure([provider("local", 1)])
    slots.configure([provider("local", None)])
    gate = slots.kept("local")
    assert gate is not None
    async with slots.held("local"), slots.held("local"):
        assert gate.in_use == 2
    assert gate.in_use == 0


async def test_take_first_takes_the_slot_of_a_gate_whose_limit_a_reload_removed() -> None:
    slots = Slots()
    slots.configure([provider("local", 1), provider("local2", 1)])
    local, local2 = slots.kept("local"), slots.kept("local2")
    assert local is not None and local2 is not None
    gates = [local, local2]
    for g in gates:
        assert g.take_now()
    taking = asyncio.create_task(take_first(gates))
    await settle()
    slots.configure([provider("local", 1), provider("local2", None)])
    assert await taking == 1
    await settle()
    # It left local's line and holds local2's count only.
    assert [(g.in_use, g.waiting) for g in gates] == [(1, 0), (2, 0)]
