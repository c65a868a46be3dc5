"""A database left at every earlier migration level, with rows, is migrated
when the daemon starts, and its old rows read back: request, attempts,
replay record and budget totals (the other migration tests use toy
migrations or an empty database)."""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import aiohttp
import pytest

from coderouterd.state import reads
from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate, status
from coderouterd.state.replay import get_replay
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("level", range(1, len(discover())))
async def test_a_database_at_an_earlier_level_migrates_at_start_and_reads_back(
    level: int, tmp_path: Path, start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    state_dir = tmp_path / "sd"
    conn = await open_db(db_path(state_dir))
    await migrate(conn, [m for m in discover() if m.version <= level], now=1.0)
    now = time.time()
    raw = json.dumps(BODY, separators=(",", ":")).encode()
    for i in range(5):
        rid = f"old{i}"
        await conn.execute(
            "INSERT INTO requests (id, ts, dialect, profile, requested_model, provider, status,"
            " stream, ttfb_ms, total_ms, input_tokens, output_tokens, cost_usd)"
            " VALUES (?, ?, 'anthropic', 'default', 'm', 'a', 200, 1, 10, 2000, 100, 50, 0.01)",
            (rid, now - 60 + i),
        )
        await conn.execute(
            "INSERT INTO attempts (request_id, seq, provider, outcome, status, ttfb_ms, latency_ms)"
            " VALUES (?, 0, 'a', 'ok', 200, 10, 2000)",
            (rid,),
        )
        await conn.execute(
            "INSERT INTO replays (request_id, ts, dialect, profile, provider, stream,"
            " request_headers, request_body, response_body, size)"
            " VALUES (?, ?, 'anthropic', 'default', 'a', 1, '{}', ?, ?, 10)",
            (rid, now - 60 + i, zlib.compress(raw), zlib.compress(b'{"x":1}')),
        )
    await conn.execute("INSERT INTO budget_totals VALUES ('a', '2000-01', 0.05, 500, 250, 5)")
    await conn.close()

    fake_upstream.responder = lambda _r: Reply(json=anthropic_message("hi"))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)), state_dir=state_dir)
    async with aiohttp.ClientSession() as s, s.post(f"{d.url}/v1/messages", json=BODY) as r:
        assert r.status == 200
    await d.state.replays.drain()
    await d.state.writer.flush()
    reader = await open_db(d.state.path, readonly=True)
    try:
        st = await status(reader, discover())
        assert st.current == st.latest
        row = await reads.request(reader, "old0")
        assert row is not None
        assert (row.status, row.input_tokens, len(row.attempts)) == (200, 100, 1)
        record = await get_replay(reader, "old0")
        assert record is not None
        assert record.request_body == raw
        got = await reader.execute_fetchall("SELECT count(*) FROM requests")
        assert list(got) == [(6,)]
        totals = await reader.execute_fetchall(
            "SELECT * FROM budget_totals WHERE month = '2000-01'"
        )
        assert list(totals) == [("a", "2000-01", 0.05, 500, 250, 5)]
    finally:
        await reader.close()
