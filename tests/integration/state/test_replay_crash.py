"""SIGKILL a real `coderouterd serve` mid-session, restart it, and replay what was kept."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
from typing import Any

import aiohttp
import msgspec

from coderouterd.state.db import open_db
from coderouterd.state.replay import request_body
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.replay_sessions import compact, msg, post_raw, text

PRICED = "cost:\n  input_tokens_per_million: 1\n  output_tokens_per_million: 2\n"


def conv(n: int) -> dict[str, Any]:
    rng = random.Random(n)
    return {
        "model": "claude-x",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "shared system " + text(random.Random(0), 8000)}],
        "tools": [{"name": f"T{i}", "input_schema": {"type": "object"}} for i in range(20)],
        "messages": [msg(rng, "user", 3000)],
    }


async def all_bodies(path: Any) -> dict[str, bytes | str]:
    conn = await open_db(path, readonly=True)
    try:
        out: dict[str, bytes | str] = {}
        for (rid,) in await conn.execute_fetchall("SELECT request_id FROM replays"):
            try:
                out[rid] = await request_body(conn, rid)
            except Exception as exc:
                out[rid] = repr(exc)
        return out
    finally:
        await conn.close()


async def status_json(d: ServeProcess) -> dict[str, Any]:
    run = await run_cli(
        "ctl", "status", "--json", "--socket", str(d.socket_path), env=child_env(d.root)
    )
    assert run.returncode == 0, run.stderr
    return msgspec.json.decode(run.stdout)


async def sessions_until_killed(
    d: ServeProcess, bodies: list[dict[str, Any]], sent: dict[str, bytes]
) -> None:
    """Six sessions sending turns until the daemon is killed mid-way (SIGKILL);
    `sent` gets each body it answered."""
    stop = asyncio.Event()

    async def session(i: int) -> None:
        r = random.Random(50 + i)
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                bodies[i]["messages"].append(msg(r, "assistant", 300))
                bodies[i]["messages"].append(msg(r, "user", r.choice([100, 1500])))
                raw = compact(bodies[i])
                try:
                    status, rid = await post_raw(http, d.url, raw)
                except aiohttp.ClientError:
                    return
                if status == 200:
                    sent[rid] = raw

    tasks = [asyncio.create_task(session(i)) for i in range(len(bodies))]
    await asyncio.sleep(1.2)
    d.send_signal(signal.SIGKILL)
    stop.set()
    await d.wait(timeout=5)
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_sigkill_mid_sessions_then_restart_keeps_every_record_readable_and_replayable(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    config = chain_yaml(
        provider_yaml("a", fake_upstream.url, extra=PRICED), top="state:\n  commit_window_ms: 20\n"
    )
    d = await serve_process(config)
    sent: dict[str, bytes] = {}
    bodies = [conv(n) for n in range(6)]
    await sessions_until_killed(d, bodies, sent)
    assert len(sent) > 30
    db = d.state_dir / "coderouterd.db"
    before = await all_bodies(db)
    bad = {rid: v for rid, v in before.items() if v != sent.get(rid)}
    assert not bad, list(bad.items())[:3]

    again = await serve_process(config, state_root=d.root)
    # Sessions go on after the restart.
    async with aiohttp.ClientSession() as http:
        for i in range(6):
            bodies[i]["messages"].append(msg(random.Random(i), "assistant", 300))
            bodies[i]["messages"].append(msg(random.Random(i), "user", 300))
            raw = compact(bodies[i])
            status, rid = await post_raw(http, again.url, raw)
            assert status == 200
            sent[rid] = raw
    await asyncio.sleep(0.5)
    after = await all_bodies(db)
    bad = {rid: v for rid, v in after.items() if v != sent.get(rid)}
    assert not bad, list(bad.items())[:3]
    # Replay a record from before the crash; the upstream gets its messages back.
    env = child_env(again.root)
    rid = sorted(before)[len(before) // 2]
    n = len(fake_upstream.requests)
    run = await run_cli(
        "replay",
        rid,
        "--diff",
        "--json",
        "--socket",
        str(again.socket_path),
        "--config",
        str(again.config_path),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    reply = msgspec.json.decode(run.stdout)
    assert reply["status"] == 200 and reply["changes"] is not None
    assert fake_upstream.requests[n].json["messages"] == json.loads(sent[rid])["messages"]
    # The request log and the budget agree with each other after the crash.
    await asyncio.sleep(0.3)
    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT count(*), sum(cost_usd), sum(input_tokens), sum(output_tokens) FROM requests WHERE provider='a'"
        ).fetchone()
        budget = c.execute(
            "SELECT requests, cost_usd, input_tokens, output_tokens FROM budget_totals WHERE provider='a'"
        ).fetchone()
    assert budget[0] == rows[0] and abs(budget[1] - rows[1]) < 1e-9 and budget[2:] == rows[2:]
    usage = await run_cli("usage", "--json", "--config", str(again.config_path), env=env)
    assert usage.returncode == 0, usage.stderr
    u = msgspec.json.decode(usage.stdout)
    print(json.dumps(u)[:800])
    status = await status_json(again)
    assert status["state"]["failed_rows"] == 0
