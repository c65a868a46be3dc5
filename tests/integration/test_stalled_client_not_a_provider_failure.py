"""A stream cut off at timeouts.total_s because its client stopped reading
(a Claude Code suspended with ^Z, a laptop lid closed) is the client's
doing, as when it leaves: the backend streamed everything at full speed,
so the attempt is `interrupted` and self-healing does not count it toward
exclusion (README, Self-healing: "an attempt cut off by the client ... do
not"). A backend that is itself too slow for total_s still fails
`timeout_total`."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from structlog.testing import capture_logs

from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.state.records import RequestRow
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_stalled_client import read_to_the_end, stalled_client

pytestmark = pytest.mark.timeout(60)

# About 24 MB of text, sent as fast as the backend can: a perfectly healthy one.
FLOOD = Reply(events=anthropic_text_stream(["y" * 60_000] * 400))
COST = "cost: {input_tokens_per_million: 3, output_tokens_per_million: 15}"
STREAM = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


def excluding_config(url: str, timeouts: str) -> str:
    """One provider, excluded after 2 x 2 consecutive failed attempts."""
    return (
        "providers:"
        + provider_yaml("a", url, extra=f"timeouts: {timeouts}\n{COST}")
        + "profiles:\n"
        "  - {name: p, providers: [a], backend_health_action: exclude, "
        "backend_health_threshold: 2}\n"
    )


async def stored_rows(d: RunningDaemon) -> list[RequestRow]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        return await reads.recent_requests(conn, since=None, provider=None, limit=100)
    finally:
        await conn.close()


async def test_clients_that_stop_reading_do_not_get_a_healthy_backend_excluded(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream(default=FLOOD) as a:
        d = await start_daemon(excluding_config(a.url, "{total_s: 1.0, idle_s: 1.0}"))
        port = int(d.url.rsplit(":", 1)[1])
        with capture_logs() as logs:
            for i in range(4):
                async with stalled_client(port) as reader:
                    await until(
                        lambda i=i: sum(e["event"] == "request.completed" for e in logs) > i, 10
                    )
                    async with asyncio.timeout(5):
                        await read_to_the_end(reader)
        done = [e for e in logs if e["event"] == "request.completed"]
        assert d.daemon.healing.book.excluded() == frozenset()
        assert not any(e["event"] == "provider.failing" for e in logs)
        assert [[(t["outcome"], t["reason"]) for t in e["attempts"]] for e in done] == [
            [("interrupted", "client_disconnected")]
        ] * 4
        [state] = [p.state for p in status_of(d.daemon).providers if p.name == "a"]
        assert state != "failing"
        # The backend answered: its provider is named, and what it counted is paid for.
        rows = await stored_rows(d)
        assert [(r.status, r.provider, r.client_disconnected) for r in rows] == [
            (499, "a", True)
        ] * 4
        assert all(r.cost_usd is not None and r.cost_usd > 0 for r in rows)


async def test_a_backend_too_slow_for_total_s_still_fails_timeout_total(
    start_daemon: StartDaemon,
) -> None:
    """The deadline fires while the daemon waits on the backend, the client
    reading all along: the provider's failure, as before any client stalls."""
    slow = Reply(events=anthropic_text_stream(["x "] * 50), delay_between_events=0.2)
    async with FakeUpstream(default=slow) as a:
        d = await start_daemon(excluding_config(a.url, "{total_s: 0.7, idle_s: 5}"))
        with capture_logs() as logs:
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{d.url}/v1/messages", json=STREAM) as resp,
            ):
                text = await resp.text()
            await until(lambda: any(e["event"] == "request.completed" for e in logs))
        done = next(e for e in logs if e["event"] == "request.completed")
        assert [(t["outcome"], t["reason"]) for t in done["attempts"]] == [
            ("failed", "timeout_total")
        ]
        assert done["status"] == 200 and done["client_disconnected"] is False
        assert "timeout_total" in text and "message_stop" not in text
        assert any(e["event"] == "provider.failing" for e in logs)
