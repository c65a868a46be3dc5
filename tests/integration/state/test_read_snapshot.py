"""The CLI's reads see one commit: a retention pass that commits between two
statements of `coderouterd replay ID` or `requests ID` does not tear what
they print."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiosqlite

from coderouterd.cli_state import reading
from coderouterd.state import reads
from coderouterd.state.records import BODY_DELTA, ReplayRow
from coderouterd.state.replay import compress, get_replay
from coderouterd.state.retention import RetentionResult
from coderouterd.state.writer import Writer
from tests.integration.state.support_db import ManualClock, enforce_retention, request_row

DAY = 86_400.0
NOW = 1_750_000_000.0
OLD = NOW - 40 * DAY
RECENT = NOW - DAY


def replay(rid: str, ts: float, body: bytes, **kw: object) -> ReplayRow:
    return ReplayRow(
        request_id=rid, ts=ts, dialect="anthropic", profile="default", provider="local",
        stream=True, request_headers="{}", request_body=body, response_body=None,
        response_truncated=False, size=len(body), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def commit_between(
    marker: str,
    run: Callable[[], Coroutine[Any, Any, RetentionResult]],
    ran: list[RetentionResult],
) -> Callable[[str], None]:
    """A trace callback for the reader: when it starts its statement holding
    `marker`, the daemon's pass runs to its end first (on this event loop,
    while the reader's thread waits)."""
    loop = asyncio.get_running_loop()

    def traced(sql: str) -> None:
        if not ran and marker in sql:
            ran.append(asyncio.run_coroutine_threadsafe(run(), loop).result(30))

    return traced


async def test_a_replay_read_while_retention_deletes_its_base_comes_back_whole(
    db_file: Path, conn: aiosqlite.Connection
) -> None:
    writer = Writer(conn, clock=ManualClock(NOW))
    writer.submit(request_row("base", ts=OLD))
    writer.submit(replay("base", OLD, compress(b'{"messages":[1,2,3]}')))
    writer.submit(request_row("cont", ts=RECENT))
    writer.submit(
        replay(
            "cont", RECENT, compress(b",4]}"), body_format=BODY_DELTA, base_id="base", base_len=18
        )
    )
    await writer.close()
    ran: list[RetentionResult] = []

    def hourly_pass() -> Coroutine[Any, Any, RetentionResult]:
        return enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=1 << 40)

    # The read path of `coderouterd replay ID`.
    async with reading(db_file) as reader:
        # Just as the reader turns from `cont` to the record it continues.
        await reader.set_trace_callback(commit_between("'base'", hourly_pass, ran))
        record = await get_replay(reader, "cont")
    assert [r.deleted_requests for r in ran] == [1]
    assert record is not None
    assert record.request_body == b'{"messages":[1,2,3,4]}'


async def test_a_request_read_while_retention_deletes_it_keeps_its_attempts(
    db_file: Path, conn: aiosqlite.Connection
) -> None:
    writer = Writer(conn, clock=ManualClock(NOW))
    writer.submit(request_row("old", ts=OLD, attempts=2))
    await writer.close()
    ran: list[RetentionResult] = []

    def hourly_pass() -> Coroutine[Any, Any, RetentionResult]:
        return enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=1 << 40)

    # The read path of `coderouterd requests ID`: the row, then its attempts.
    async with reading(db_file) as reader:
        await reader.set_trace_callback(commit_between("FROM attempts", hourly_pass, ran))
        row = await reads.request(reader, "old")
    assert [r.deleted_requests for r in ran] == [1]
    assert row is not None
    assert [a.outcome for a in row.attempts] == ["failed", "ok"]
