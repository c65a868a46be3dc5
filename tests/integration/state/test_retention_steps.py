"""A retention pass over a large backlog runs in steps that batches, the
reads at start-up and a starting daemon do not wait behind, on a real file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiosqlite
from structlog.testing import capture_logs

from coderouterd.config.model import StateConfig
from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.service import StateService
from coderouterd.telemetry.logging import get_logger
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.state.support_db import ManualClock, request_row

DAY = 86_400.0
NOW = 1_750_000_000.0


async def seed(state_dir: Path, *, expired: int, kept: int, now: float) -> None:
    """Request rows (one attempt each): `expired` of 40 days before `now`, `kept` of an hour."""
    conn = await open_db(db_path(state_dir))
    try:
        await migrate(conn, discover(), now=now - 50 * DAY)
        rows = [(f"old-{i:07d}", now - 40 * DAY + i * 0.001) for i in range(expired)]
        rows += [(f"new-{i:07d}", now - 3600 + i) for i in range(kept)]
        await conn.execute("BEGIN")
        await conn.executemany(
            "INSERT INTO requests (id, ts, dialect, profile, status, stream, total_ms)"
            " VALUES (?, ?, 'anthropic', 'default', 200, 1, 10.0)",
            rows,
        )
        await conn.executemany(
            "INSERT INTO attempts (request_id, seq, provider, outcome) VALUES (?, 0, 'a', 'ok')",
            ((rid,) for rid, _ in rows),
        )
        await conn.execute("COMMIT")
    finally:
        await conn.close()


async def expired_left(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("SELECT count(*) FROM requests WHERE id LIKE 'old-%'"))
    return int(rows[0][0])


async def test_batches_and_start_up_reads_wait_for_one_retention_step_not_the_backlog(
    tmp_path: Path,
) -> None:
    await seed(tmp_path / "state", expired=20_000, kept=5, now=NOW)
    with capture_logs() as logs:
        # Opening starts the retention loop: its first pass has 40 chunks to delete.
        state = await StateService.open(
            tmp_path / "state", StateConfig(), clock=ManualClock(NOW), log=get_logger()
        )
        try:
            # The loop's first step goes to the writer before anything below.
            await asyncio.sleep(0)
            state.writer.submit(request_row("fresh", ts=NOW))
            await state.writer.flush()
            after_batch = await state.writer.maintain(expired_left)

            async def read(
                conn: aiosqlite.Connection, provider: str, limit: int, *, now: float
            ) -> list[int]:
                return [await expired_left(conn)]

            at_read = await state.per_provider(read, ["a"], 10)
            # The pass logs its totals once, after its last step.
            async with asyncio.timeout(30):
                while not [e for e in logs if e["event"] == "state.retention"]:  # noqa: ASYNC110 - polls the log
                    await asyncio.sleep(0.01)
            left = await state.writer.maintain(expired_left)
        finally:
            await state.close()
    assert 0 < after_batch < 20_000
    assert 0 < at_read["a"][0] < 20_000
    (line,) = [entry for entry in logs if entry["event"] == "state.retention"]
    assert line["deleted_requests"] == 20_000
    assert left == 0


async def test_a_daemon_with_a_retention_backlog_listens_before_the_backlog_is_gone(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    now = time.time()
    await seed(tmp_path / "backlog", expired=100_000, kept=5, now=now)
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url)), state_dir=tmp_path / "backlog"
    )
    # Listening: the start-up reads (drift, pace, learned windows) are done.
    reader = await open_db(d.state.path, readonly=True)
    try:
        left = await expired_left(reader)
    finally:
        await reader.close()
    assert left > 0, "the daemon started listening only once every expired row was deleted"
    async with asyncio.timeout(60):
        while await d.state.writer.maintain(expired_left):  # noqa: ASYNC110 - polls the rows
            await asyncio.sleep(0.05)
