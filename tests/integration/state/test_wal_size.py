"""The `-wal` file follows the live data: a burst of big records does not
hold its size on disk after the next commit, or after a retention pass."""

from __future__ import annotations

import os
import time
from pathlib import Path

import aiosqlite

from coderouterd.cli_state import reading
from coderouterd.clock import SystemClock
from coderouterd.config.model import StateConfig
from coderouterd.state.db import JOURNAL_SIZE_LIMIT
from coderouterd.state.records import ReplayRow
from coderouterd.state.service import StateService
from coderouterd.state.writer import Writer
from coderouterd.telemetry.logging import get_logger
from tests.integration.state.support_db import (
    ManualClock,
    count,
    enforce_retention,
    request_row,
)

NOW = 1_750_000_000.0
MB = 1 << 20
BURST_MB = 40


def big_replay(rid: str, ts: float) -> ReplayRow:
    # Random bytes: what zlib cannot shrink, as a stored record's blob.
    return ReplayRow(
        request_id=rid, ts=ts, dialect="anthropic", profile="default", provider="local",
        stream=True, request_headers="{}", request_body=os.urandom(MB), response_body=None,
        response_truncated=False, size=MB,
    )  # fmt: skip


def wal_size(db: Path) -> int:
    return db.with_name(db.name + "-wal").stat().st_size


async def burst(writer: Writer, now: float) -> None:
    for i in range(BURST_MB):
        writer.submit(request_row(f"big{i}", ts=now - 100 + i))
        writer.submit(big_replay(f"big{i}", now - 100 + i))
    await writer.flush()


async def test_a_commit_after_a_burst_cuts_the_wal_file_down(
    db_file: Path, conn: aiosqlite.Connection
) -> None:
    writer = Writer(conn, clock=ManualClock(NOW))
    await burst(writer, NOW)
    assert wal_size(db_file) > (BURST_MB - 10) * MB
    # Ordinary traffic afterwards: small commits.
    for j in range(20):
        writer.submit(request_row(f"small{j}", ts=NOW + j))
        await writer.flush()
    await writer.close()
    assert wal_size(db_file) <= JOURNAL_SIZE_LIMIT


async def test_a_retention_pass_empties_the_wal_file(
    db_file: Path, conn: aiosqlite.Connection
) -> None:
    writer = Writer(conn, clock=ManualClock(NOW))
    await burst(writer, NOW)
    await writer.close()
    assert wal_size(db_file) > (BURST_MB - 10) * MB
    # A pass that deletes nothing, with no commit after the burst.
    result = await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=1 << 40)
    assert result.deleted_requests == 0
    assert wal_size(db_file) == 0


async def test_a_reader_in_the_way_neither_holds_up_the_pass_nor_its_next_one(
    db_file: Path, conn: aiosqlite.Connection
) -> None:
    writer = Writer(conn, clock=ManualClock(NOW))
    await burst(writer, NOW)
    # A commit the reader below reads from the WAL, not yet from the database.
    writer.submit(request_row("small", ts=NOW))
    await writer.close()
    async with reading(db_file) as reader:
        # A CLI command in the middle of its reads: it holds its snapshot.
        assert await count(reader, "requests") == BURST_MB + 1
        started = time.monotonic()
        await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=1 << 40)
        # The writer's busy_timeout (5 s) is not spent waiting for the reader.
        assert time.monotonic() - started < 2.0
        assert wal_size(db_file) > 0
    await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=1 << 40)
    assert wal_size(db_file) == 0


async def test_ctl_status_database_size_drops_back_after_the_hourly_pass(
    tmp_path: Path,
) -> None:
    state = await StateService.open(
        tmp_path / "state", StateConfig(), clock=SystemClock(), log=get_logger()
    )
    try:
        now = time.time()
        await burst(state.writer, now)
        await state.retention_tick(time.time())
        # What `ctl status` shows adds the -wal file to the database's own.
        assert state.stats().size_bytes - state.path.stat().st_size <= MB
        assert state.path.stat().st_size > (BURST_MB - 10) * MB
    finally:
        await state.close()
