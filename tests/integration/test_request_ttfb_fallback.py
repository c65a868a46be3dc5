"""A request's time to first byte is its answer's: after a fallback, the
answering attempt's, counted from the request's arrival."""

from __future__ import annotations

import aiohttp
import pytest

from coderouterd.state import reads
from coderouterd.state.db import open_db
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_metrics import at, scrape

pytestmark = pytest.mark.timeout(30)

UNARY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


async def test_unary_request_ttfb_is_the_answering_providers_not_a_failed_attempts(
    start_daemon: StartDaemon,
) -> None:
    """Provider `a`'s 200 is a proxy's HTML page and falls through; `b`
    answers after 0.6 s. The request's `ttfb_ms` is `b`'s first byte, as the
    attempt row and /metrics' time_to_first_byte_seconds say, not the 1 ms
    of `a`'s page: no answer existed then."""
    async with FakeUpstream() as a, FakeUpstream() as b:
        a.script(Reply(raw_body=b"<html>bad gateway</html>", headers={"content-type": "text/html"}))
        b.script(Reply(json=anthropic_message("from b"), delay_before_headers=0.6))
        d = await start_daemon(chain_yaml(provider_yaml("a", a.url), provider_yaml("b", b.url)))
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{d.url}/v1/messages", json=UNARY) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["x-coderouter-provider"] == "b"
        await d.state.writer.flush()
        _, samples, _ = await scrape(d.url)
        conn = await open_db(d.state.path, readonly=True)
        try:
            [row] = await reads.recent_requests(conn, since=None, provider=None, limit=5)
        finally:
            await conn.close()
    assert row.provider == "b"
    [failed, answered] = row.attempts
    assert (failed.provider, failed.outcome, answered.provider, answered.outcome) == (
        "a",
        "failed",
        "b",
        "ok",
    )
    assert answered.ttfb_ms is not None and answered.ttfb_ms >= 550
    # /metrics observes the answering attempt's first byte.
    assert at(samples, "time_to_first_byte_seconds_sum", provider="b") >= 0.55
    # The request's own first byte can be no earlier than its answer's.
    assert row.ttfb_ms is not None and row.ttfb_ms >= answered.ttfb_ms, row.ttfb_ms
