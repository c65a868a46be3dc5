"""Memory settings: glibc tuning (applied on glibc, never over an operator's
own MALLOC_* settings), the cycle collector's, and the heap given back when idle."""

from __future__ import annotations

import asyncio
import gc
import platform

import pytest

from coderouterd.tasks import cancel_and_wait, spawn
from coderouterd.telemetry.memory import (
    GC_THRESHOLDS,
    malloc_trim,
    trim_when_idle,
    tune_gc,
    tune_malloc,
)


def test_explicit_malloc_settings_win() -> None:
    assert tune_malloc({"MALLOC_ARENA_MAX": "2"}) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_applied_on_glibc() -> None:
    assert tune_malloc({}) is True


def test_gc_tuning_freezes_what_exists_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_and_callable_on_glibc() -> None:
    trim = malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)


async def test_the_heap_is_given_back_once_after_each_busy_spell_that_went_idle() -> None:
    requests, in_flight, trims = [0], [0], []
    idle = 0.02

    async def spells(n: int) -> None:
        await asyncio.sleep(idle * n)

    task = spawn(
        trim_when_idle(lambda: requests[0], lambda: in_flight[0], lambda: trims.append(1),
                       idle_s=idle),
        name="test-trim",
    )  # fmt: skip
    try:
        await spells(4)
        assert trims == []  # nothing served yet
        requests[0], in_flight[0] = 5, 1
        await spells(4)
        assert trims == []  # one still in flight
        in_flight[0] = 0
        await spells(4)
        assert trims == [1]
        await spells(4)
        assert trims == [1]  # idle since: nothing more to give back
        requests[0] = 6
        await spells(4)
        assert trims == [1, 1]
    finally:
        await cancel_and_wait(task)
