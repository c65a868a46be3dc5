"""The state service as the daemon opens it: settings reach the connection,
retention follows the live config, and exclusions with their audit events are
never dropped."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from coderouterd.clock import SystemClock
from coderouterd.config.model import StateConfig
from coderouterd.state import reads
from coderouterd.state.audit import tail, verify
from coderouterd.state.db import open_db
from coderouterd.state.records import ExclusionSet, ReplayRow
from coderouterd.state.retention import used_bytes
from coderouterd.state.service import RETENTION_INTERVAL_S, StateService
from coderouterd.telemetry.logging import get_logger
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.state.support_db import ManualClock, request_row

DAY = 86_400.0
NOW = 1_750_000_000.0
MB = 1024 * 1024

Opener = Callable[..., Awaitable[StateService]]


@pytest_asyncio.fixture
async def open_state(tmp_path: Path) -> AsyncIterator[Opener]:
    opened: list[StateService] = []

    async def open_(
        config: StateConfig, clock: ManualClock | None = None, state_dir: Path | None = None
    ) -> StateService:
        service = await StateService.open(
            state_dir or tmp_path / f"state-{len(opened)}", config,
            clock=clock or ManualClock(NOW), log=get_logger(),
        )  # fmt: skip
        opened.append(service)
        return service

    yield open_
    for service in opened:
        await service.close()


async def on_writer(service: StateService, sql: str) -> list[Any]:
    async def job(conn: aiosqlite.Connection) -> list[Any]:
        return list(await conn.execute_fetchall(sql))

    return await service.writer.maintain(job)


@pytest.mark.parametrize(("setting", "pragma"), [("NORMAL", 1), ("FULL", 2)])
async def test_state_synchronous_reaches_the_writers_connection(
    open_state: Opener, setting: str, pragma: int
) -> None:
    service = await open_state(StateConfig(synchronous=setting))  # type: ignore[arg-type]
    assert await on_writer(service, "PRAGMA synchronous") == [(pragma,)]


def replay(rid: str, ts: float, size: int) -> ReplayRow:
    return ReplayRow(
        request_id=rid, ts=ts, dialect="anthropic", profile="default", provider="local",
        stream=False, request_headers="{}", request_body=os.urandom(size), response_body=None,
        response_truncated=False, size=size,
    )  # fmt: skip


async def request_ids(service: StateService) -> list[str]:
    return [r[0] for r in await on_writer(service, "SELECT id FROM requests ORDER BY id")]


async def test_the_retention_loop_runs_a_pass_as_the_state_opens(open_state: Opener) -> None:
    first = await open_state(StateConfig())
    first.writer.submit(request_row("old", ts=NOW - 40 * DAY))
    first.writer.submit(request_row("new", ts=NOW - 60))
    await first.close()
    again = await open_state(StateConfig(), state_dir=first.path.parent)
    async with asyncio.timeout(2.0):
        while await request_ids(again) != ["new"]:  # noqa: ASYNC110 - polls the rows
            await asyncio.sleep(0.005)


async def test_closing_while_a_batch_is_being_committed_keeps_it(tmp_path: Path) -> None:
    state = await StateService.open(
        tmp_path / "mid-batch", StateConfig(), clock=SystemClock(), log=get_logger()
    )
    try:
        state.writer.submit(request_row("in-flight", ts=time.time()))
        # Once the loop has taken the record it is awaiting SQLite's thread: the
        # commit takes several round trips, each a loop iteration away.
        async with asyncio.timeout(2.0):
            while state.writer.stats().queue_depth:  # noqa: ASYNC110 - polls the loop
                await asyncio.sleep(0)
        assert state.writer.stats().committed_rows == 0
    finally:
        await state.close()
    assert state.writer.stats().committed_rows == 1
    with sqlite3.connect(state.path) as db:
        assert db.execute("SELECT id FROM requests").fetchall() == [("in-flight",)]


async def test_retention_follows_the_reloaded_config(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    chain = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await start_daemon(chain, clock=ManualClock(NOW))
    state = d.state
    for i in range(10):
        state.writer.submit(request_row(f"old{i}", ts=NOW - 5 * DAY))
        state.writer.submit(request_row(f"new{i}", ts=NOW - 60))
        state.writer.submit(replay(f"new{i}", NOW - 60, 300_000))
    await state.writer.flush()
    # The defaults (30 days, 2 GB) keep everything.
    assert await state.retention_tick(NOW) == NOW + RETENTION_INTERVAL_S
    assert len(await request_ids(state)) == 20
    d.config_path.write_text("state:\n  retention_days: 2\n  retention_max_mb: 1\n" + chain)
    assert (await d.daemon.reload()).ok
    with capture_logs() as logs:
        await state.retention_tick(NOW)
    assert await request_ids(state) == [f"new{i}" for i in range(10)]
    (line,) = [entry for entry in logs if entry["event"] == "state.retention"]
    assert line["deleted_requests"] == 10 and line["deleted_replays"] > 0
    assert line["deleted_pieces"] == line["deleted_packs"] == 0
    assert await state.writer.maintain(used_bytes) <= 1 * MB
    # Size is trimmed oldest first, replays before requests.
    left = await on_writer(state, "SELECT request_id FROM replays ORDER BY ts, request_id")
    assert 0 < len(left) < 10


async def test_exclusions_and_their_audit_events_survive_an_overflow_in_order(
    open_state: Opener,
) -> None:
    clock = ManualClock(NOW)
    state = await open_state(StateConfig(queue_size=1), clock)
    flood = iter(range(1000))

    def overflow() -> None:
        for _ in range(5):
            state.writer.submit(request_row(f"r{next(flood)}"))

    overflow()
    state.provider_excluded(
        "a", reason="unhealthy", consecutive_failures=6, threshold=3, last_reason="http_503",
        last_status=503, episode=1,
    )  # fmt: skip
    overflow()
    clock.advance(30)
    state.restart_command_ran(
        "a", argv=["systemctl", "restart", "a;b"], exit_status=0, signal=None, timed_out=False,
        duration_ms=12.5, output_tail="done\n", output_truncated=False, episode=1,
    )  # fmt: skip
    state.provider_restored(
        "a", via="probe", excluded_for_s=30.0, probes_failed=0, episode=1, latency_ms=4.5
    )
    overflow()
    clock.advance(1)
    state.provider_excluded(
        "b", reason="manual", consecutive_failures=0, threshold=3, last_reason=None,
        last_status=None, episode=1, uid=os.getuid(),
    )  # fmt: skip
    overflow()
    stats = state.writer.stats()
    assert stats.dropped > 0 and stats.audit_dropped == 0
    await state.close()
    conn = await open_db(state.path, readonly=True)
    try:
        excluded = await reads.exclusions(conn)
        audited = [(r.event, r.ts, r.fields) for r in await tail(conn, 10)]
        intact = await verify(conn)
    finally:
        await conn.close()
    # a was excluded, then restored: only b's row is left, since when it happened.
    assert excluded == [ExclusionSet(provider="b", reason="manual", since=NOW + 31, until=None)]
    assert intact.ok
    assert audited == [
        ("provider.excluded", NOW, {
            "provider": "a", "reason": "unhealthy", "consecutive_failures": 6, "threshold": 3,
            "last_reason": "http_503", "last_status": 503, "episode": 1,
        }),
        ("provider.restart_command", NOW + 30, {
            "provider": "a", "argv": ["systemctl", "restart", "a;b"], "exit_status": 0,
            "signal": None, "timed_out": False, "duration_ms": 12.5, "output_tail": "done\n",
            "output_truncated": False, "episode": 1,
        }),
        ("provider.restored", NOW + 30, {
            "provider": "a", "via": "probe", "excluded_for_s": 30.0, "probes_failed": 0,
            "episode": 1, "latency_ms": 4.5,
        }),
        ("provider.excluded", NOW + 31, {
            "provider": "b", "reason": "manual", "consecutive_failures": 0, "threshold": 3,
            "last_reason": None, "last_status": None, "episode": 1, "uid": os.getuid(),
        }),
    ]  # fmt: skip
