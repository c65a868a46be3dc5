"""A reload that changes a retention limit applies it at once: the rows the
new limit rules out go without waiting for the hourly pass."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from coderouterd.state.db import open_db
from coderouterd.state.records import ReplayRow
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.state.support_db import ManualClock, count, request_row

DAY = 86_400.0
NOW = 1_750_000_000.0
MB = 1 << 20


def replay(rid: str, ts: float, size: int) -> ReplayRow:
    return ReplayRow(
        request_id=rid, ts=ts, dialect="anthropic", profile="default", provider="local",
        stream=False, request_headers="{}", request_body=os.urandom(size), response_body=None,
        response_truncated=False, size=size,
    )  # fmt: skip


async def rows_left(path: Path, table: str, want: int) -> int:
    """The rows of `table` once there are `want` of them, or after 5 s."""
    reader = await open_db(path, readonly=True)
    try:
        left = await count(reader, table)
        async with asyncio.timeout(5.0):
            while left != want:
                await asyncio.sleep(0.02)
                left = await count(reader, table)
    except TimeoutError:
        pass
    finally:
        await reader.close()
    return left


async def test_a_reload_lowering_retention_days_deletes_old_requests_at_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    chain = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await start_daemon(chain, clock=ManualClock(NOW))
    for i in range(20):
        d.state.writer.submit(request_row(f"old{i}", ts=NOW - 10 * DAY + i))
    d.state.writer.submit(request_row("fresh", ts=NOW))
    await d.state.writer.flush()
    # The hourly pass is an hour away; the defaults (30 days) keep all of them.
    assert await rows_left(d.state.path, "requests", 21) == 21
    d.config_path.write_text("state:\n  retention_days: 2\n" + chain)
    assert (await d.daemon.reload()).ok
    assert await rows_left(d.state.path, "requests", 1) == 1


async def test_a_reload_lowering_replay_max_total_mb_deletes_old_replays_at_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    chain = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await start_daemon(chain, clock=ManualClock(NOW))
    for i in range(4):
        d.state.writer.submit(request_row(f"r{i}", ts=NOW - 60 + i))
        d.state.writer.submit(replay(f"r{i}", NOW - 60 + i, MB))
    await d.state.writer.flush()
    d.config_path.write_text("state:\n  replay: {max_total_mb: 2}\n" + chain)
    assert (await d.daemon.reload()).ok
    assert await rows_left(d.state.path, "replays", 2) == 2
    # Requests stay: only their replay records were over the cap.
    assert await rows_left(d.state.path, "requests", 4) == 4
