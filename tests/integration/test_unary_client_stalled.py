"""A non-streaming client that stops reading its answer: timeouts.total_s
bounds the writes to it, counted from the request's start as for a stream,
so the request is reported (log line, row, spend the budget gate reads) and
leaves the requests in flight, and the client is cut off rather than
waited on for as long as it keeps its connection open. A client that reads
its answer, however slowly, within that time gets all of it."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from structlog.testing import capture_logs

from coderouterd.routing.cost import month_of
from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.state.records import RequestRow
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_stalled_client import read_to_the_end, stalled_client

pytestmark = pytest.mark.timeout(40)

TOTAL_S = 5.0
ASK = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
COST = "cost: {input_tokens_per_million: 1000000, output_tokens_per_million: 1000000}"
# Far more than the socket buffers between the daemon and a client that
# reads nothing can hold.
TEXT = "y" * 20_000_000


async def read_slowly(url: str) -> str:
    """The answer's text, read a megabyte every tenth of a second: about two
    seconds for the whole, four times the last word a stream's client gets."""
    got = bytearray()
    async with aiohttp.ClientSession() as http, http.post(url, json=ASK) as resp:
        async for chunk in resp.content.iter_chunked(1 << 20):
            got += chunk
            await asyncio.sleep(0.1)
    return str(json.loads(got)["content"][0]["text"])


async def rows_of(d: RunningDaemon) -> list[RequestRow]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        return await reads.recent_requests(conn, since=None, provider=None, limit=10, failed=False)
    finally:
        await conn.close()


async def test_total_s_ends_the_wait_for_a_unary_client_that_stopped_reading(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message(TEXT)), Reply(json=anthropic_message(TEXT)))
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url, extra=f"timeouts: {{total_s: {TOTAL_S}}}\n{COST}")
        )
    )
    with capture_logs() as logs:
        async with stalled_client(int(d.url.rsplit(":", 1)[1]), ASK) as reader:
            sent = time.monotonic()
            # Read meanwhile, and slowly: it gets all its answer.
            text = await read_slowly(d.url + "/v1/messages")
            # Without a bound on the writes this waits until the client leaves.
            await until(
                lambda: sum(e["event"] == "request.completed" for e in logs) == 2, TOTAL_S + 5
            )
            ended = time.monotonic() - sent
            await until(lambda: len(d.daemon.inflight) == 0, 2)
            in_flight = status_of(d.daemon).in_flight
            spent = d.state.budget.spent("a", month_of(time.time()))
            # The daemon cut the connection: reading it now comes to an end.
            async with asyncio.timeout(5):
                await read_to_the_end(reader)
    assert text == TEXT
    assert ended < TOTAL_S + 2.0
    assert in_flight == ()
    # Both answers are paid for: each 10 tokens in and 5 out at $1 a token.
    assert spent == pytest.approx(30.0)
    # The client that stopped reading is logged as one gone, the other answered.
    rows = await rows_of(d)
    assert sorted((r.status, r.client_disconnected, r.error) for r in rows) == [
        (200, False, None),
        (499, True, "client stopped reading the answer"),
    ]
    assert [r.provider for r in rows] == ["a", "a"]
