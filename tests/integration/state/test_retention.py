"""Retention deletes by age, then by size, oldest first, on a real database file."""

from __future__ import annotations

import os

import aiosqlite
import pytest

from coderouterd.state.records import AuditEvent, BudgetIncrement, FinishedRequest, ReplayRow
from coderouterd.state.retention import (
    age_cutoff,
    next_trim,
    oldest_to_delete,
    used_bytes,
)
from coderouterd.state.writer import Writer
from tests.integration.state.support_db import ManualClock, count, enforce_retention, request_row

DAY = 86_400.0
NOW = 100 * DAY


def replay(rid: str, ts: float, size: int) -> ReplayRow:
    return ReplayRow(
        request_id=rid, ts=ts, dialect="anthropic", profile="default", provider="local",
        stream=True, request_headers="{}", request_body=os.urandom(size), response_body=None,
        response_truncated=False, size=size,
    )  # fmt: skip


async def seed(conn: aiosqlite.Connection, n: int, *, replay_size: int, start: float) -> None:
    writer = Writer(conn, clock=ManualClock())
    # The budget total outlives every request row deleted for size.
    spend = BudgetIncrement(provider="local", month="2025-01", cost_usd=0.0, input_tokens=0,
                            output_tokens=0)  # fmt: skip
    for i in range(n):
        ts = start + i
        row = request_row(f"r{i:04d}", ts=ts, attempts=2)
        writer.submit(FinishedRequest(row=row, spend=spend if i == 0 else None))
        if replay_size:
            writer.submit(replay(f"r{i:04d}", ts, replay_size))
    writer.submit(AuditEvent(ts=start, event="kept", fields={}))
    await writer.close()


async def ids(conn: aiosqlite.Connection, sql: str) -> list[str]:
    return [r[0] for r in await conn.execute_fetchall(sql)]


@pytest.mark.parametrize(
    ("used", "replays_left", "pieces_left", "requests_left", "step"),
    [
        (100, True, True, True, None),
        (101, True, True, True, "replays"),
        (101, False, True, True, "pieces"),
        (101, False, False, True, "requests"),
        (101, False, False, False, None),
    ],
)
def test_next_trim_takes_replays_first_then_pieces(
    used: int, replays_left: bool, pieces_left: bool, requests_left: bool, step: str | None
) -> None:
    assert next_trim(used_bytes=used, max_bytes=100, replays_left=replays_left,
                     pieces_left=pieces_left, requests_left=requests_left) == step  # fmt: skip


def test_pure_helpers() -> None:
    assert age_cutoff(NOW, 30) == NOW - 30 * DAY
    assert oldest_to_delete([10, 10, 10], total=125, limit=100) == 3
    assert oldest_to_delete([30, 10], total=125, limit=100) == 1
    assert oldest_to_delete([5], total=125, limit=100) == 1
    assert oldest_to_delete([10], total=90, limit=100) == 0


async def test_requests_past_the_age_limit_go_with_attempts_and_replays(
    conn: aiosqlite.Connection,
) -> None:
    # 20 requests, one per day, the oldest 40 days ago.
    writer = Writer(conn, clock=ManualClock())
    for i in range(20):
        ts = NOW - (40 - 2 * i) * DAY
        writer.submit(request_row(f"r{i:02d}", ts=ts, attempts=2))
        writer.submit(replay(f"r{i:02d}", ts, 10))
    await writer.close()
    result = await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=1 << 30)
    # Days 40, 38, ... 32 are older than 30 days: r00..r04.
    assert (result.deleted_requests, result.deleted_replays) == (5, 5)
    assert (await ids(conn, "SELECT id FROM requests ORDER BY ts"))[0] == "r05"
    assert await count(conn, "attempts") == 30
    assert await count(conn, "replays") == 15


async def test_over_the_size_cap_the_oldest_replays_go_first(conn: aiosqlite.Connection) -> None:
    await seed(conn, 60, replay_size=16_384, start=NOW - 100)
    before = await used_bytes(conn)
    cap = before - 300_000
    result = await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=cap)
    assert await used_bytes(conn) <= cap
    assert result.deleted_requests == 0
    # About 300 KB of 16 KB replays, not a whole chunk of them.
    assert 18 <= result.deleted_replays <= 25
    left = await ids(conn, "SELECT request_id FROM replays ORDER BY ts")
    assert left == [f"r{i:04d}" for i in range(result.deleted_replays, 60)]
    assert await count(conn, "requests") == 60


async def test_with_no_replays_left_the_oldest_requests_go(conn: aiosqlite.Connection) -> None:
    await seed(conn, 1200, replay_size=2_000, start=NOW - 5000)
    # The empty schema alone takes about 80 KB of pages.
    result = await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=120 * 1024)
    assert await used_bytes(conn) <= 120 * 1024
    assert result.deleted_replays == 1200
    assert result.deleted_requests >= 500
    remaining = await ids(conn, "SELECT id FROM requests ORDER BY ts")
    assert remaining == [f"r{i:04d}" for i in range(result.deleted_requests, 1200)]
    assert await count(conn, "audit") == 1
    assert await count(conn, "budget_totals") == 1
    rows = await conn.execute_fetchall(
        "SELECT count(*) FROM attempts WHERE request_id NOT IN (SELECT id FROM requests)"
    )
    assert list(rows) == [(0,)]


async def test_the_replay_cap_counts_recorded_sizes(conn: aiosqlite.Connection) -> None:
    await seed(conn, 10, replay_size=1000, start=NOW - 100)
    result = await enforce_retention(
        conn, now=NOW, max_age_days=30, max_bytes=1 << 30, max_replay_bytes=6_500
    )
    assert (result.deleted_requests, result.deleted_replays) == (0, 4)
    left = await ids(conn, "SELECT request_id FROM replays ORDER BY ts")
    assert left == [f"r{i:04d}" for i in range(4, 10)]


async def test_nothing_to_do_deletes_nothing(conn: aiosqlite.Connection) -> None:
    await seed(conn, 5, replay_size=100, start=NOW - 10)
    result = await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=1 << 30)
    assert (result.deleted_requests, result.deleted_replays) == (0, 0)
    assert not conn.in_transaction
