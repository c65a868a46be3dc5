"""A routed request cut short, by its client leaving or by the shutdown, is
recorded for replay like any other routed request: with the response its
client got until then, and the provider its request-log row names."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from coderouterd.state.db import DB_FILENAME, open_db
from coderouterd.state.replay import ReplayRecord, get_replay
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe
from tests.integration.state.replay_sessions import settle

pytestmark = pytest.mark.timeout(60)

MESSAGES = [{"role": "user", "content": "hi"}]


async def replay_of(db: Path, rid: str) -> ReplayRecord | None:
    conn = await open_db(db, readonly=True)
    try:
        return await get_replay(conn, rid)
    finally:
        await conn.close()


async def row_of(d: RunningDaemon, rid: str) -> tuple[str, str | None, int]:
    """The request's row, once written."""
    async with asyncio.timeout(5.0):
        while True:
            await settle(d)
            with sqlite3.connect(d.state.path) as db:
                rows = db.execute(
                    "SELECT profile, provider, status FROM requests WHERE id = ?", (rid,)
                ).fetchall()
            if rows:
                [(profile, provider, status)] = rows
                return profile, provider, status
            await asyncio.sleep(0.05)


async def test_a_stream_whose_client_left_midway_is_recorded_with_what_it_got(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(
        events=anthropic_text_stream(["word "] * 30), delay_between_events=0.05
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    body = {"model": "m", "max_tokens": 50, "messages": MESSAGES, "stream": True}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(d.url + "/v1/messages", json=body)
        rid = resp.headers["x-request-id"]
        got = await resp.content.read(200)
        assert b"message_start" in got
        resp.close()
    await fake_upstream.wait_for_disconnect(timeout=5.0)
    assert await row_of(d, rid) == ("default", "a", 499)
    await settle(d)
    record = await replay_of(d.state.path, rid)
    assert record is not None
    assert (record.profile, record.provider, record.stream) == ("default", "a", True)
    assert record.response_body is not None
    assert record.response_body.startswith(b"event: message_start")
    assert b"message_stop" not in record.response_body


async def test_a_unary_request_whose_client_left_is_recorded_unanswered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("late"), delay_before_headers=30)
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES}
    async with aiohttp.ClientSession() as http:
        asking = asyncio.create_task(
            http.post(d.url + "/v1/messages", json=body, headers={"x-request-id": "gone"})
        )
        await fake_upstream.wait_for_requests(1, timeout=5)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
    await fake_upstream.wait_for_disconnect(timeout=5.0)
    assert await row_of(d, "gone") == ("default", None, 499)
    await settle(d)
    record = await replay_of(d.state.path, "gone")
    assert record is not None
    assert (record.profile, record.provider, record.stream) == ("default", None, False)
    assert not record.response_body


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_request_abandoned_at_shutdown_is_recorded_with_the_shutdown_error(
    serve_process: StartServe, fake_upstream: FakeUpstream, stream: bool
) -> None:
    # A stream is held after its first delta, a whole reply before anything,
    # until the grace period is over.
    fake_upstream.default = Reply(
        json=anthropic_message("late"),
        events=anthropic_text_stream(["x", "y"]) if stream else None,
        pause_after_frames=3 if stream else None,
        resume=asyncio.Event(),
        delay_before_headers=0 if stream else 30,
    )
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)), server={"grace_period_s": 0.5}
    )
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream": stream}
    mid_stream = asyncio.Event()

    async def ask(http: aiohttp.ClientSession) -> bytes:
        got = b""
        headers = {"x-request-id": "cut"}
        async with http.post(d.url + "/v1/messages", json=body, headers=headers) as resp:
            while chunk := await resp.content.readany():
                got += chunk
                if b"content_block_delta" in got:
                    mid_stream.set()
        return got

    async with aiohttp.ClientSession() as http:
        asking = asyncio.create_task(ask(http))
        await fake_upstream.wait_for_requests(1, timeout=5)
        if stream:
            await asyncio.wait_for(mid_stream.wait(), 5)
        d.send_signal(signal.SIGTERM)
        got = await asyncio.wait_for(asking, 10)
    assert b"shutting down" in got
    assert await d.wait(timeout=15) == 0
    [done] = d.events("request.completed")
    assert (done["status"], done["provider"]) == (503, "a" if stream else None)
    record = await replay_of(d.state_dir / DB_FILENAME, "cut")
    assert record is not None
    assert (record.profile, record.provider, record.stream) == ("default", done["provider"], stream)
    assert record.response_body == got
