"""Retention over the size cap when the bytes over it are recent replay pieces,
on a real database file: the pieces go, the request log stays, and a record
not yet written that names a piece gone is left out rather than stored unreadable."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from coderouterd.config.model import StateConfig
from coderouterd.state.recorder import ReplayRecorder
from coderouterd.state.records import BODY_PIECES, AuditEvent, FinishedRequest, PieceRow, ReplayRow
from coderouterd.state.replay import get_replay
from coderouterd.state.retention import used_bytes
from coderouterd.state.service import StateService
from coderouterd.state.writer import Writer
from coderouterd.telemetry.logging import get_logger
from tests.integration.state.support_db import ManualClock, count, enforce_retention, request_row
from tests.integration.state.test_replay_pieces import pending
from tests.unit.state.test_pieces import conversation

NOW = 1_750_000_000.0
MIB = 1024 * 1024


def replay_with_pieces(rid: str, ts: float, pieces: int, piece_size: int) -> ReplayRow:
    new = tuple(
        PieceRow(
            digest=hashlib.sha256(f"{rid}/{i}".encode()).digest(),
            data=os.urandom(piece_size),
            size=piece_size,
            last_ref=ts,
        )
        for i in range(pieces)
    )
    return ReplayRow(
        request_id=rid, ts=ts, dialect="anthropic", profile="default", provider="local",
        stream=True, request_headers="{}", request_body=b"recipe", response_body=b"answer",
        response_truncated=False, size=6 + pieces * piece_size, body_format=BODY_PIECES,
        new_pieces=new, named_pieces=tuple(p.digest for p in new),
    )  # fmt: skip


async def busy_hour(conn: aiosqlite.Connection) -> None:
    """300 requests of the last hour; 20 of them first turns whose replays wrote
    20 pieces of 5 KB each (2 MB in all, every piece under two hours old)."""
    writer = Writer(conn, clock=ManualClock(NOW))
    for i in range(300):
        ts = NOW - 3600 + i * 10
        writer.submit(FinishedRequest(row=request_row(f"r{i:04d}", ts=ts)))
        if i % 15 == 0:
            writer.submit(replay_with_pieces(f"r{i:04d}", ts, pieces=20, piece_size=5_000))
    await writer.close()


async def test_recent_pieces_go_for_size_and_the_request_log_stays(
    conn: aiosqlite.Connection,
) -> None:
    await busy_hour(conn)
    assert await used_bytes(conn) > 2 * MIB

    result = await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=MIB)

    assert await used_bytes(conn) <= MIB
    assert await count(conn, "requests") == 300
    assert (result.deleted_requests, result.deleted_replays) == (0, 20)
    assert result.deleted_pieces == 400
    assert await count(conn, "replay_pieces") == await count(conn, "replays") == 0


async def test_requests_stay_when_deleting_them_cannot_bring_the_database_under_the_cap(
    conn: aiosqlite.Connection,
) -> None:
    try:
        await conn.execute_fetchall("SELECT count(*) FROM dbstat")
    except sqlite3.OperationalError:
        pytest.skip("this SQLite is built without the dbstat table")
    writer = Writer(conn, clock=ManualClock(NOW))
    for i in range(300):
        writer.submit(request_row(f"r{i:04d}", ts=NOW - 3600 + i * 10))
    # The audit log, kept for good, alone takes more than the cap.
    for i in range(1500):
        writer.submit(AuditEvent(ts=NOW - 7200 + i, event="e", fields={"x": "y" * 1000}))
    await writer.close()
    assert await used_bytes(conn) > MIB

    result = await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=MIB)

    assert result.deleted_requests == 0
    assert await count(conn, "requests") == 300


async def test_a_record_queued_when_its_pieces_go_for_size_is_left_out_not_stored_unreadable(
    conn: aiosqlite.Connection,
) -> None:
    clock = ManualClock(NOW)
    writer = Writer(conn, clock=clock)
    recorder = ReplayRecorder(writer, max_record_bytes=1 << 22)
    body = conversation(40)
    body["system"] = [{"type": "text", "text": os.urandom(150_000).hex()}]
    schema_only = await used_bytes(conn)

    async def turn(rid: str) -> None:
        clock.advance(1)
        writer.submit(request_row(rid, ts=clock.wall()))
        recorder.submit(pending(rid, body, clock.wall()))
        await recorder.drain()

    def forgotten() -> None:
        # What the state service does (StateService._retention_deleted).
        recorder.forget()
        writer.doubt_named_pieces()

    await turn("a")
    await writer.flush()
    # "b" names the pieces "a" wrote, and waits in the writer's queue.
    await turn("b")
    assert writer.stats().queue_depth == 2
    clock.advance(1)
    # The writer is not running: the job goes first, then the queued batch.
    result = await writer.maintain(
        lambda c: enforce_retention(
            c,
            now=clock.wall(),
            max_age_days=30,
            max_bytes=schema_only + 64 * 1024,
            forgotten=forgotten,
        )
    )
    assert result.deleted_replays == 1 and result.deleted_pieces > 0
    await turn("c")
    await writer.close()

    assert await count(conn, "requests") == 3
    assert writer.stats().replays_orphaned == 1
    kept = [r[0] for r in await conn.execute_fetchall("SELECT request_id FROM replays")]
    assert kept == ["c"]
    record = await get_replay(conn, "c")
    assert record is not None and json.loads(record.request_body) == body


async def test_after_a_size_pass_frees_its_pieces_the_next_turn_writes_them_again(
    tmp_path: Path,
) -> None:
    clock = ManualClock(NOW)
    config = StateConfig(retention_max_mb=1)
    state = await StateService.open(tmp_path / "state", config, clock=clock, log=get_logger())
    body = conversation(40)
    body["system"] = [{"type": "text", "text": os.urandom(1_500_000).hex()}]

    async def turn(rid: str) -> None:
        clock.advance(60)
        state.writer.submit(request_row(rid, ts=clock.wall()))
        state.replays.submit(pending(rid, body, clock.wall()))
        await state.replays.drain()
        await state.writer.flush()

    try:
        await turn("a")
        clock.advance(60)
        await state.retention_tick(clock.wall())
        assert await state.writer.maintain(lambda c: count(c, "replay_pieces")) == 0
        await turn("b")
        record = await state.writer.maintain(lambda c: get_replay(c, "b"))
        kept = await state.writer.maintain(lambda c: count(c, "requests"))
    finally:
        await state.close()
    assert record is not None and json.loads(record.request_body) == body
    assert kept == 2
