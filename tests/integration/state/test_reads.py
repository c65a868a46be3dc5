"""Typed reads on a read-only connection see what the writer committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest_asyncio

from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.state.migrate import discover
from coderouterd.state.records import (
    AttemptRow,
    BudgetIncrement,
    ExclusionCleared,
    ExclusionSet,
    FinishedRequest,
    RequestRow,
)
from coderouterd.state.writer import Writer
from tests.integration.state.support_db import ManualClock, request_row


@pytest_asyncio.fixture
async def reader(db_file: Path) -> AsyncIterator[aiosqlite.Connection]:
    c = await open_db(db_file, readonly=True)
    yield c
    await c.close()


async def write(conn: aiosqlite.Connection, *records: object) -> None:
    writer = Writer(conn, clock=ManualClock())
    for r in records:
        assert writer.submit(r)  # type: ignore[arg-type]
    await writer.close()


async def test_recent_requests_newest_first_with_attempts_and_filters(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection
) -> None:
    rows = [
        request_row("a", ts=100.0, provider="ollama", attempts=2),
        request_row("b", ts=200.0, provider="nim", attempts=0),
        request_row("c", ts=300.0, provider="ollama", attempts=3, cost_usd=0.5,
                    usage_estimated=True, client_disconnected=True),
    ]  # fmt: skip
    await write(conn, *rows)
    got = await reads.recent_requests(reader, since=None, provider=None, limit=10)
    assert got == [rows[2], rows[1], rows[0]]
    assert [len(r.attempts) for r in got] == [3, 0, 2]
    assert await reads.recent_requests(reader, since=150.0, provider="ollama", limit=10) == [
        rows[2]
    ]
    limited = await reads.recent_requests(reader, since=None, provider=None, limit=2)
    assert [r.id for r in limited] == ["c", "b"]


async def test_one_request_by_id(conn: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
    row = RequestRow(
        id="x", ts=1.0, dialect="openai", profile="p", requested_model=None, provider=None,
        status=503, stream=False, ttfb_ms=None, total_ms=3.0, error="no provider",
        attempts=(AttemptRow(seq=0, provider="a", outcome="skipped", reason="excluded",
                             detail="oom"),),
    )  # fmt: skip
    await write(conn, row)
    assert await reads.request(reader, "x") == row
    assert await reads.request(reader, "missing") is None


async def test_month_totals_and_exclusions(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection
) -> None:
    inc = BudgetIncrement(provider="or", month="2025-06", cost_usd=0.5, input_tokens=3,
                          output_tokens=4)  # fmt: skip
    may = BudgetIncrement(provider="or", month="2025-05", cost_usd=9.0, input_tokens=0,
                          output_tokens=0)  # fmt: skip
    await write(
        conn,
        FinishedRequest(row=request_row("j1"), spend=inc),
        FinishedRequest(row=request_row("j2"), spend=inc),
        FinishedRequest(row=request_row("m1"), spend=may),
        ExclusionSet(provider="b", reason="oom", since=5.0, until=65.0),
        ExclusionSet(provider="a", reason="manual", since=1.0),
        ExclusionSet(provider="c", reason="x", since=1.0),
        ExclusionCleared(provider="c"),
    )  # fmt: skip
    totals = await reads.month_totals(reader, "2025-06")
    assert totals == {
        "or": reads.BudgetTotal(cost_usd=1.0, input_tokens=6, output_tokens=8, requests=2)
    }
    assert await reads.month_totals(reader, "2024-01") == {}
    assert await reads.exclusions(reader) == [
        ExclusionSet(provider="a", reason="manual", since=1.0, until=None),
        ExclusionSet(provider="b", reason="oom", since=5.0, until=65.0),
    ]


async def test_health_and_integrity(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection, db_file: Path
) -> None:
    await write(conn, request_row("a"))
    health = await reads.db_health(reader, db_file)
    assert health.schema_version == len(discover())
    assert health.page_count > 0
    assert health.size_bytes > 0
    assert health.wal_bytes > 0  # the writer is still open, so its WAL is there
    assert await reads.integrity_check(reader) == []


async def test_health_of_a_database_without_migrations(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    c = await open_db(path)
    try:
        health = await reads.db_health(c, path)
        assert (health.schema_version, health.wal_bytes) == (0, 0)
    finally:
        await c.close()
