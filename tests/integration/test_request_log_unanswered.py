"""A non-streaming client that leaves before its reply was sent got nothing
from anybody: its request row names no answering provider, whatever the
upstream had sent the daemon by then (a stream cut before its commit point
is stored the same way; one cut after it names its provider)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from coderouterd.state import reads
from coderouterd.state.db import open_db
from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.upstream import FakeUpstream, Reply

ASK = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_unary_client_that_left_after_the_upstream_headers_names_no_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The provider sends its headers and a first byte, then holds the rest.
    fake_upstream.script(Reply(json={"type": "message"}, delay_within_body=2.0))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5), http.post(f"{d.url}/v1/messages", json=ASK) as r:
                await r.read()
    await fake_upstream.wait_for_disconnect(timeout=5.0)
    await until(lambda: len(d.daemon.inflight) == 0)
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        [row] = await reads.recent_requests(conn, since=None, provider=None, limit=10, failed=False)
    finally:
        await conn.close()
    assert (row.status, row.client_disconnected, row.provider) == (499, True, None)
    [attempt] = row.attempts
    assert (attempt.provider, attempt.outcome, attempt.reason) == (
        "a",
        "interrupted",
        "client_disconnected",
    )
    # The upstream had answered the daemon: its time to first byte is kept.
    assert attempt.ttfb_ms is not None
