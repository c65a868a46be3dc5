"""The batched writer against a real database file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from coderouterd.state.chain import GENESIS, chain_hash
from coderouterd.state.db import open_db
from coderouterd.state.records import (
    BODY_DELTA,
    BODY_PIECES,
    AuditEvent,
    BudgetIncrement,
    ExclusionSet,
    FinishedRequest,
    ReplayRow,
    RequestRow,
)
from coderouterd.state.writer import Writer
from coderouterd.tasks import cancel_and_wait, spawn
from tests.integration.state.support_db import ManualClock, count, eventually, request_row


class Errors:
    def __init__(self) -> None:
        self.seen: list[tuple[Exception, int]] = []

    def __call__(self, exc: Exception, lost: int) -> None:
        self.seen.append((exc, lost))


def start(writer: Writer) -> asyncio.Task[None]:
    return spawn(writer.run(), name="test.state.writer")


def running(conn: aiosqlite.Connection, **kwargs: Any) -> tuple[Writer, asyncio.Task[None], Errors]:
    """A writer committing every 10 ms, its loop, and the failures it reports."""
    errors = Errors()
    writer = Writer(conn, clock=ManualClock(), window_s=0.01, on_error=errors, **kwargs)
    return writer, start(writer), errors


async def stop(writer: Writer, task: asyncio.Task[None]) -> None:
    await writer.close()
    await asyncio.wait_for(task, 1.0)


async def audit_chain_verifies(conn: aiosqlite.Connection) -> list[int]:
    rows = await conn.execute_fetchall(
        "SELECT seq, ts, event, fields, prev_hash, hash FROM audit ORDER BY seq"
    )
    prev = GENESIS
    seqs = []
    for seq, ts, event, fields, prev_hash, digest in rows:
        assert prev_hash == prev
        assert digest == chain_hash(prev, seq, ts, event, fields)
        prev = digest
        seqs.append(seq)
    return seqs


async def test_submits_within_the_window_share_one_transaction(
    conn: aiosqlite.Connection,
) -> None:
    writer = Writer(conn, clock=ManualClock(), window_s=0.2)
    task = start(writer)
    for i in range(5):
        assert writer.submit(request_row(f"r{i}"))
    await asyncio.sleep(0.02)
    for i in range(5, 10):
        assert writer.submit(request_row(f"r{i}"))
    await eventually(lambda: writer.stats().committed_rows >= 10)
    stats = writer.stats()
    assert (stats.batches, stats.committed_rows, stats.queue_depth) == (1, 10, 0)
    assert stats.last_commit_wall == 1_750_000_000.0
    assert await count(conn, "requests") == 10
    assert await count(conn, "attempts") == 10
    await stop(writer, task)


async def test_max_batch_splits_a_burst(conn: aiosqlite.Connection) -> None:
    writer = Writer(conn, clock=ManualClock(), window_s=5.0, max_batch=4)
    task = start(writer)
    for i in range(10):
        writer.submit(request_row(f"r{i}"))
    # Two full batches go without waiting for the (long) window.
    await eventually(lambda: writer.stats().batches >= 2)
    assert writer.stats().committed_rows == 8
    await writer.flush()
    assert (writer.stats().batches, await count(conn, "requests")) == (3, 10)
    await stop(writer, task)


async def test_close_writes_everything_then_refuses(db_file: Path) -> None:
    conn = await open_db(db_file)
    writer = Writer(conn, clock=ManualClock(), window_s=10.0)
    task = start(writer)
    for i in range(300):
        writer.submit(request_row(f"r{i}"))
    spend = BudgetIncrement(provider="p", month="2025-06", cost_usd=1.0, input_tokens=1,
                            output_tokens=2)  # fmt: skip
    writer.submit(FinishedRequest(row=request_row("spent"), spend=spend))
    started = time.monotonic()
    await stop(writer, task)
    assert time.monotonic() - started < 2.0
    assert not writer.submit(request_row("late"))
    assert writer.stats().dropped == 1
    await conn.close()
    reader = await open_db(db_file, readonly=True)
    assert await count(reader, "requests") == 301
    assert await count(reader, "budget_totals") == 1
    await reader.close()


async def test_close_without_run_still_writes_everything(conn: aiosqlite.Connection) -> None:
    writer = Writer(conn, clock=ManualClock())
    for i in range(3):
        writer.submit(request_row(f"r{i}"))
    await writer.close()
    assert await count(conn, "requests") == 3


async def test_overflow_is_dropped_counted_and_never_blocks(conn: aiosqlite.Connection) -> None:
    writer = Writer(conn, clock=ManualClock(), max_queue=5, max_audit_queue=3)
    accepted = [writer.submit(request_row(f"r{i}")) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    # Audit events have their own queue: a full request queue does not drop them.
    audits = [writer.submit(AuditEvent(ts=1.0, event="e", fields={"i": i})) for i in range(4)]
    assert audits == [True, True, True, False]
    stats = writer.stats()
    assert (stats.queue_depth, stats.dropped, stats.audit_queue_depth, stats.audit_dropped) == (
        5, 3, 3, 1,
    )  # fmt: skip
    await writer.close()
    assert (await count(conn, "requests"), await count(conn, "audit")) == (5, 3)


async def test_drops_are_reported_at_once_then_once_per_batch(
    conn: aiosqlite.Connection,
) -> None:
    reports: list[int] = []
    writer = Writer(conn, clock=ManualClock(), max_queue=2, on_drop=reports.append)
    for i in range(5):
        writer.submit(request_row(f"a{i}"))
    # The first drop is reported as it happens; the next two wait for a batch.
    assert reports == [1]
    await writer.flush()
    assert reports == [1, 2]
    await writer.flush()
    assert reports == [1, 2]
    # Drops right after a report wait for the next batch, however few.
    for i in range(3):
        writer.submit(request_row(f"b{i}"))
    assert reports == [1, 2]
    await writer.close()
    assert reports == [1, 2, 1]


async def test_audit_events_survive_a_flood_and_chain(conn: aiosqlite.Connection) -> None:
    writer = Writer(conn, clock=ManualClock(), max_queue=10, max_batch=50)
    task = start(writer)
    for i in range(200):
        writer.submit(request_row(f"r{i}"))
        assert writer.submit(AuditEvent(ts=1000.0 + i / 7, event="provider.ejected",
                                        fields={"provider": f"p{i % 3}", "n": i}))  # fmt: skip
    await stop(writer, task)
    assert writer.stats().audit_dropped == 0
    assert writer.stats().dropped > 0
    assert await audit_chain_verifies(conn) == list(range(1, 201))


async def test_a_reused_request_id_is_stored_under_a_new_one_with_its_replay(
    conn: aiosqlite.Connection,
) -> None:
    renamed: list[tuple[str, str]] = []
    writer, task, errors = running(conn, on_rename=lambda a, b: renamed.append((a, b)))
    writer.submit(request_row("r1"))
    writer.submit(AuditEvent(ts=1.0, event="first", fields={}))
    await writer.flush()
    # r1 again (a client reusing its request id long after): stored as r1.<hex>,
    # the rest of its batch beside it, its replay record pointed at it.
    writer.submit(request_row("r2"))
    writer.submit(ExclusionSet(provider="p", reason="oom", since=1.0))
    writer.submit(AuditEvent(ts=2.0, event="second", fields={}))
    writer.submit(request_row("r1", ts=2000.0))
    writer.submit(replay_row("r1"))
    await writer.flush()
    # A replay record arriving in a later batch follows the rename too.
    writer.submit(request_row("r3"))
    writer.submit(AuditEvent(ts=3.0, event="third", fields={}))
    await stop(writer, task)
    assert errors.seen == []
    [(client_id, stored_id)] = renamed
    assert client_id == "r1" and stored_id.startswith("r1.") and len(stored_id) == 11
    stats = writer.stats()
    assert (stats.failed_rows, stats.renamed) == (0, 1)
    rows = await conn.execute_fetchall("SELECT id, ts FROM requests ORDER BY id")
    assert [(r[0], r[1]) for r in rows] == [
        ("r1", 1000.0),
        (stored_id, 2000.0),
        ("r2", 1000.0),
        ("r3", 1000.0),
    ]
    replays = await conn.execute_fetchall("SELECT request_id FROM replays")
    assert [r[0] for r in replays] == [stored_id]
    assert await count(conn, "exclusions") == 1
    assert not conn.in_transaction
    assert await audit_chain_verifies(conn) == [1, 2, 3]


async def test_a_replay_of_a_renamed_request_in_a_later_batch_follows_it(
    conn: aiosqlite.Connection,
) -> None:
    writer, task, _ = running(conn)
    writer.submit(request_row("r1"))
    await writer.flush()
    writer.submit(request_row("r1", ts=2000.0))
    await writer.flush()
    writer.submit(replay_row("r1"))
    await stop(writer, task)
    [(stored_id,)] = await conn.execute_fetchall("SELECT id FROM requests WHERE ts = 2000.0")
    replays = await conn.execute_fetchall("SELECT request_id FROM replays")
    assert [r[0] for r in replays] == [stored_id]


async def test_a_record_that_breaks_another_constraint_is_left_out_alone(
    conn: aiosqlite.Connection,
) -> None:
    writer, task, errors = running(conn)
    writer.submit(request_row("r1"))
    await writer.flush()
    # Attempts of one request with the same seq twice: refused, alone.
    writer.submit(repeated_seq("r2"))
    writer.submit(request_row("r3"))
    await stop(writer, task)
    assert [lost for _, lost in errors.seen] == [1]
    ids = [r[0] for r in await conn.execute_fetchall("SELECT id FROM requests ORDER BY id")]
    assert ids == ["r1", "r3"]


async def test_a_batch_whose_audit_row_is_refused_is_rolled_back_whole(
    conn: aiosqlite.Connection,
) -> None:
    writer, task, errors = running(conn)
    writer.submit(AuditEvent(ts=1.0, event="first", fields={}))
    await writer.flush()
    # Another writer took the next place in the chain: an audit row cannot be
    # left out alone (the chain would break after it), so its batch goes.
    await conn.execute(
        "INSERT INTO audit (seq, ts, event, fields, prev_hash, hash) VALUES (2, 1.5, 'x', '{}', '', '')"
    )
    await conn.commit()
    writer.submit(request_row("r1"))
    writer.submit(AuditEvent(ts=2.0, event="lost", fields={}))
    await writer.flush()
    await stop(writer, task)
    assert [lost for _, lost in errors.seen] == [2]
    assert await count(conn, "requests") == 0
    assert not conn.in_transaction
    events = await conn.execute_fetchall("SELECT event FROM audit ORDER BY seq")
    assert [e[0] for e in events] == ["first", "x"]


async def test_unencodable_audit_fields_lose_only_their_event(
    conn: aiosqlite.Connection,
) -> None:
    errors = Errors()
    writer = Writer(conn, clock=ManualClock(), on_error=errors)
    writer.submit(AuditEvent(ts=1.0, event="ok", fields={}))
    writer.submit(AuditEvent(ts=2.0, event="bad", fields={"x": object()}))
    writer.submit(request_row("r1"))
    await writer.close()
    assert [lost for _, lost in errors.seen] == [1]
    assert (await count(conn, "audit"), await count(conn, "requests")) == (1, 1)
    assert writer.stats().committed_rows == 2


async def test_the_chain_resumes_after_reopening(db_file: Path) -> None:
    for round_ in range(2):
        conn = await open_db(db_file)
        writer = Writer(conn, clock=ManualClock())
        task = start(writer)
        for i in range(3):
            writer.submit(AuditEvent(ts=float(round_ * 10 + i), event="e", fields={"r": round_}))
        await stop(writer, task)
        await conn.close()
    reader = await open_db(db_file, readonly=True)
    assert await audit_chain_verifies(reader) == [1, 2, 3, 4, 5, 6]
    await reader.close()


async def test_maintenance_runs_between_batches(conn: aiosqlite.Connection) -> None:
    writer = Writer(conn, clock=ManualClock(), window_s=0.01)
    task = start(writer)
    writer.submit(request_row("r1"))

    async def job(c: aiosqlite.Connection) -> int:
        assert not c.in_transaction
        return await count(c, "requests")

    await writer.flush()
    assert await writer.maintain(job) == 1
    await stop(writer, task)


async def test_a_cancelled_run_leaves_flush_to_write_inline(conn: aiosqlite.Connection) -> None:
    writer = Writer(conn, clock=ManualClock(), window_s=10.0)
    task = start(writer)
    writer.submit(request_row("r1"))
    await asyncio.sleep(0.01)
    await cancel_and_wait(task)
    await writer.close()
    assert await count(conn, "requests") == 1


async def test_maintenance_without_a_running_loop_runs_inline(
    conn: aiosqlite.Connection,
) -> None:
    writer = Writer(conn, clock=ManualClock())
    writer.submit(request_row("r1"))

    async def job(c: aiosqlite.Connection) -> int:
        return await count(c, "requests")

    # Jobs go before the queued batch, as they do between batches of run().
    results = await asyncio.gather(writer.maintain(job), writer.maintain(job))
    assert results == [0, 0]
    assert await count(conn, "requests") == 1
    await writer.close()


def repeated_seq(rid: str) -> RequestRow:
    """A request row whose one attempt is there twice (the same seq)."""
    row = request_row(rid, attempts=1)
    return msgspec.structs.replace(row, attempts=(row.attempts[0], row.attempts[0]))


def replay_row(rid: str, base: str | None = None) -> ReplayRow:
    return ReplayRow(
        request_id=rid, ts=1.0, dialect="anthropic", profile="p", provider=None, stream=False,
        request_headers="{}", request_body=b"\x00x", response_body=None,
        response_truncated=False, size=2, body_format=BODY_DELTA if base else BODY_PIECES,
        base_id=base, base_len=1 if base else None,
    )  # fmt: skip


async def test_replays_that_cannot_be_stored_are_counted_not_errors(
    conn: aiosqlite.Connection,
) -> None:
    errors = Errors()
    writer = Writer(conn, clock=ManualClock(), on_error=errors)
    writer.submit(request_row("r1"))
    writer.submit(request_row("r2"))
    writer.submit(replay_row("r1"))
    # No request row; a base that is not stored; a base stored in the same batch.
    writer.submit(replay_row("gone"))
    writer.submit(replay_row("r2", base="lost"))
    await writer.flush()
    writer.submit(request_row("r3"))
    writer.submit(replay_row("r3", base="r1"))
    await writer.close()
    assert errors.seen == []
    stats = writer.stats()
    assert (stats.committed_rows, stats.replays_orphaned, stats.failed_rows) == (5, 2, 0)
    rows = await conn.execute_fetchall("SELECT request_id FROM replays ORDER BY request_id")
    assert [r[0] for r in rows] == ["r1", "r3"]


async def test_a_reused_id_whose_request_breaks_another_constraint_too_is_left_out_alone(
    conn: aiosqlite.Connection,
) -> None:
    writer, task, errors = running(conn)
    writer.submit(request_row("r1"))
    await writer.flush()
    # Its id is taken, and its attempts repeat a seq: renaming cannot save it.
    writer.submit(repeated_seq("r1"))
    writer.submit(request_row("r2"))
    await stop(writer, task)
    assert [lost for _, lost in errors.seen] == [1]
    ids = [r[0] for r in await conn.execute_fetchall("SELECT id FROM requests ORDER BY id")]
    assert ids == ["r1", "r2"]
    assert writer.stats().renamed == 0
