"""Helpers for the state tests: a clock that tests move, rows to write, a row count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiosqlite

from coderouterd.state.records import AttemptRow, RequestRow
from coderouterd.state.retention import RetentionResult, retention_steps


class ManualClock:
    def __init__(self, wall: float = 1_750_000_000.0) -> None:
        self.now = wall

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def request_row(
    rid: str, *, ts: float = 1000.0, provider: str = "local", attempts: int = 1, **kw: object
) -> RequestRow:
    return RequestRow(
        id=rid,
        ts=ts,
        dialect="anthropic",
        profile="default",
        requested_model="claude-x",
        provider=provider,
        status=200,
        stream=True,
        ttfb_ms=12.5,
        total_ms=80.0,
        attempts=tuple(
            AttemptRow(seq=i, provider=provider, outcome="ok" if i == attempts - 1 else "failed")
            for i in range(attempts)
        ),
        **kw,  # type: ignore[arg-type]
    )


async def count(conn: aiosqlite.Connection, table: str) -> int:
    rows = list(await conn.execute_fetchall(f"SELECT count(*) FROM {table}"))  # noqa: S608
    return int(rows[0][0])


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until the writer's counters say so; they are plain numbers, not events."""
    async with asyncio.timeout(2.0):
        while not condition():  # noqa: ASYNC110 - nothing to wait on but the counters
            await asyncio.sleep(0.005)


async def enforce_retention(conn: aiosqlite.Connection, **kw: Any) -> RetentionResult:
    """A whole retention pass at once (the service runs it step by step);
    what it deleted."""
    result = RetentionResult()
    async for result in retention_steps(conn, **kw):  # noqa: B007 - the last is the total
        pass
    return result
