"""A reload that changes a provider retires its adapter: the adapter's session,
and so its pooled upstream connections, is closed as soon as no request uses
it, and never under a request begun under the old config."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from coderouterd.status import status_of
from coderouterd.wire.sse import SSEDecoder
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
# Far below aiohttp's 15 s keep-alive: a connection closed by then was closed by us.
CLOSED_WITHIN_S = 2.0


def config(url: str, idle_s: int, extra: str = "") -> str:
    """One provider `a`; a new idle_s is a changed provider, so a new adapter."""
    return chain_yaml(provider_yaml("a", url, extra=f"timeouts: {{idle_s: {idle_s}}}\n{extra}"))


async def reload(d: RunningDaemon, yaml: str) -> None:
    d.config_path.write_text(yaml)
    assert (await d.daemon.reload()).ok


async def text_streamed(url: str) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages", json={**BODY, "stream": True}) as resp,
    ):
        assert resp.status == 200
        data = await resp.read()
    events = [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(data)]
    return "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")


def waiting(d: RunningDaemon) -> int:
    """Requests in line for provider `a`'s slot."""
    slots = status_of(d.daemon).providers[0].slots
    return 0 if slots is None else slots.waiting


async def answered(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/messages", json=BODY) as r:
        await r.read()
        return r.status


async def test_reloads_that_change_a_provider_leave_only_the_current_connection_open(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(config(fake_upstream.url, 100))
    for i in range(1, 11):
        await reload(d, config(fake_upstream.url, 100 + i))
        assert await answered(d.url) == 200
    # Each generation opened its own connection; only the current one's is kept.
    await fake_upstream.wait_for_open_connections(1, timeout=CLOSED_WITHIN_S)


async def test_a_stream_begun_before_a_reload_keeps_its_connection_until_it_ends(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resume = asyncio.Event()
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["old", "."]), pause_after_frames=3, resume=resume)
    )
    d = await start_daemon(config(fake_upstream.url, 100))
    streaming = asyncio.create_task(text_streamed(d.url))
    await until(lambda: len(fake_upstream.requests) == 1)
    await reload(d, config(fake_upstream.url, 101))
    # Time enough for a close of the retired adapter to have cut the stream.
    await asyncio.sleep(0.1)
    assert (fake_upstream.open_connections, streaming.done()) == (1, False)
    resume.set()
    assert await streaming == "old."
    # The new generation has sent nothing yet: no connection is left.
    await fake_upstream.wait_for_open_connections(0, timeout=CLOSED_WITHIN_S)


async def test_a_request_in_line_at_a_reload_is_sent_through_the_old_adapter_then_closed(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resume = asyncio.Event()
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["first"]), pause_after_frames=3, resume=resume),
        Reply(json=anthropic_message("second")),
    )
    d = await start_daemon(config(fake_upstream.url, 100, "max_concurrent: 1"))
    first = asyncio.create_task(text_streamed(d.url))
    await until(lambda: len(fake_upstream.requests) == 1)
    second = asyncio.create_task(answered(d.url))
    await until(lambda: waiting(d) == 1)
    await reload(d, config(fake_upstream.url, 101, "max_concurrent: 1"))
    # The first finishes, and the retired adapter falls idle, before the
    # second, which took the old config at its start, sends through it.
    resume.set()
    assert (await first, await second) == ("first", 200)
    assert len(fake_upstream.requests) == 2
    await fake_upstream.wait_for_open_connections(0, timeout=CLOSED_WITHIN_S)
