"""A non-streaming client that leaves while its (large) answer is still
being written to it did not get it: its request is logged as one whose
client left (499, `client_disconnected`), as a stream cut by its client is.
The answer's spend still counts: the provider did the work."""

from __future__ import annotations

import time

import aiohttp
import pytest

from coderouterd.routing.cost import month_of
from coderouterd.state import reads
from coderouterd.state.db import open_db
from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

ASK = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
COST = "cost: {input_tokens_per_million: 1000000, output_tokens_per_million: 1000000}"


async def test_a_unary_client_that_left_mid_answer_is_logged_499(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("y" * 20_000_000)))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url, extra=COST)))
    async with aiohttp.ClientSession() as http:
        resp = await http.post(d.url + "/v1/messages", json=ASK)
        assert resp.status == 200 and await resp.content.read(1000)
        resp.close()
    await until(lambda: len(d.daemon.inflight) == 0, 5)
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        [row] = await reads.recent_requests(conn, since=None, provider=None, limit=10, failed=False)
    finally:
        await conn.close()
    assert (row.status, row.client_disconnected, row.error, row.provider) == (499, True, None, "a")
    [attempt] = row.attempts
    assert (attempt.outcome, attempt.status) == ("ok", 200)
    # 10 tokens in and 5 out at $1 a token.
    assert d.state.budget.spent("a", month_of(time.time())) == pytest.approx(15.0)
