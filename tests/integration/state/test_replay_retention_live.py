"""Retention running while conversations are recorded: what is kept reads back exactly."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from coderouterd.state.db import open_db
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.replay_sessions import (
    compact,
    msg,
    post_raw,
    settle,
    stored_bodies,
)


class ShiftClock:
    """The system clock, its wall time moved on by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time() + self.offset


def conv(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 100,
        "system": [{"type": "text", "text": f"conv {n} " + rng.randbytes(15000).hex()}],
        "tools": [{"name": f"T{i}", "input_schema": {"type": "object"}} for i in range(20)],
        "messages": [msg(rng, "user", 3000)],
    }


async def test_size_retention_during_concurrent_sessions_keeps_every_kept_record_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    top = "state:\n  commit_window_ms: 5\n  replay:\n    max_total_mb: 1\n"
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url), top=top))
    rng = random.Random(3)
    sent: dict[str, bytes] = {}
    stop = False

    async def session(n: int) -> None:
        body = conv(random.Random(n), n)
        r = random.Random(100 + n)
        async with aiohttp.ClientSession() as http:
            for _ in range(25):
                body["messages"].append(msg(r, "assistant", r.choice([200, 2000])))
                body["messages"].append(msg(r, "user", r.choice([200, 6000])))
                body["messages"][-1]["content"].append(
                    {"type": "text", "text": r.randbytes(r.choice([100, 3000])).hex()}
                )
                raw = compact(body)
                status, rid = await post_raw(http, d.url, raw)
                assert status == 200
                sent[rid] = raw
                await asyncio.sleep(r.random() * 0.01)

    async def retention() -> None:
        while not stop:
            await d.state.retention_tick(
                d.daemon.clock.wall() if hasattr(d.daemon, "clock") else time.time()
            )
            await asyncio.sleep(rng.random() * 0.03)

    ret = asyncio.create_task(retention())
    await asyncio.gather(*(session(n) for n in range(12)))
    stop = True
    await ret
    await settle(d)
    await d.state.retention_tick(time.time())
    stored = await stored_bodies(d)
    broken = {rid: got for rid, got in stored.items() if got != sent.get(rid)}
    assert not broken, list(broken.items())[:3]
    conn = await open_db(d.state.path, readonly=True)
    try:
        total = (await conn.execute_fetchall("SELECT coalesce(sum(size),0) FROM replays"))[0][0]
        real = (
            await conn.execute_fetchall(
                "SELECT coalesce(sum(length(request_body) + coalesce(length(response_body),0)),0) FROM replays"
            )
        )[0][0]
        n_req = (await conn.execute_fetchall("SELECT count(*) FROM requests"))[0][0]
    finally:
        await conn.close()
    assert total <= 1 << 20
    assert n_req == len(sent)
    stats = d.state.stats()
    print("kept", len(stored), "of", len(sent), "orphaned", stats.replays_orphaned, total, real)


async def test_age_retention_with_a_moving_clock_during_sessions(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    clock = ShiftClock()
    top = "state:\n  commit_window_ms: 5\n  retention_days: 0.1\n"
    d = await start_daemon(
        chain_yaml(provider_yaml("local", fake_upstream.url), top=top), clock=clock
    )
    sent: dict[str, bytes] = {}
    async with aiohttp.ClientSession() as http:
        bodies = [conv(random.Random(n), n) for n in range(3)]
        r = random.Random(1)
        for step in range(60):
            i = step % 3
            bodies[i]["messages"].append(msg(r, "assistant", 500))
            bodies[i]["messages"].append(msg(r, "user", 500))
            raw = compact(bodies[i])
            status, rid = await post_raw(http, d.url, raw)
            assert status == 200
            sent[rid] = raw
            if step % 7 == 6:
                # 1.5 hours pass; a retention pass with 2.4 hours' age limit.
                clock.offset += 5400
                await settle(d)
                await d.state.retention_tick(clock.wall())
    stored = await stored_bodies(d)
    broken = {rid: got for rid, got in stored.items() if got != sent.get(rid)}
    assert not broken, list(broken.items())[:3]
    # The last few turns (within the age limit) are all kept.
    last = list(sent)[-3:]
    assert all(rid in stored for rid in last)
