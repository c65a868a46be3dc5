"""A replay record names the provider its request-log row names: the one
whose answer the client got, or none, not merely the last one tried."""

from __future__ import annotations

import sqlite3

import aiohttp

from coderouterd.state.db import open_db
from coderouterd.state.replay import get_replay
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error_body
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.replay_sessions import settle

KEEPALIVE = "server: {keepalive_after_s: 0.05, keepalive_interval_s: 0.05}\n"
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_stream_every_provider_failed_after_pings_is_recorded_as_no_ones(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Each fails after keep-alive pings have sent the HTTP 200.
    down = anthropic_error_body("overloaded_error", "down")
    fake_upstream.default = Reply(status=503, json=down, delay_before_headers=0.3)
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url),
            provider_yaml("b", fake_upstream.url),
            top=KEEPALIVE,
        )
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            d.url + "/v1/messages", json={**BODY, "stream": True}, headers={"x-request-id": "none"}
        ) as resp,
    ):
        got = await resp.read()
    assert resp.status == 200 and b"event: ping" in got and b"event: error" in got
    await settle(d)
    with sqlite3.connect(d.state.path) as db:
        rows = db.execute("SELECT provider, status FROM requests WHERE id = 'none'").fetchall()
    assert rows == [(None, 503)]
    conn = await open_db(d.state.path, readonly=True)
    try:
        record = await get_replay(conn, "none")
    finally:
        await conn.close()
    assert record is not None
    assert record.provider is None
    assert record.response_body == got
