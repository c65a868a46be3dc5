"""SIGTERM with many streams mid-stream after the grace period: each one is
abandoned at shutdown, so each is logged 503 "abandoned at shutdown" and ends
with the "shutting down" error event, never as a client that left (499) or a
silent cut.

A stream's own timers (its keep-alive ping, its idle limit) may fire in the
same loop step as the shutdown cancels its handler; the shutdown must still
be told apart from a client leaving. Pings every few milliseconds across
many streams make that coincidence happen in every round.
"""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from coderouterd.wire.sse import SSEDecoder
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe

pytestmark = pytest.mark.timeout(120)

STREAMS = 150
ROUNDS = 4
BODY = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
SERVER = {"grace_period_s": 0.5, "keepalive_after_s": 0.002, "keepalive_interval_s": 0.002}


async def stream(http: aiohttp.ClientSession, url: str, mid_stream: asyncio.Event) -> bytes:
    """The whole body of a streamed request; `mid_stream` set once text arrives."""
    data = b""
    async with http.post(f"{url}/v1/messages", json=BODY) as resp:
        while chunk := await resp.content.readany():
            data += chunk
            if b"content_block_delta" in data:
                mid_stream.set()
    return data


def told_of_the_shutdown(body: bytes | BaseException) -> bool:
    events = [] if isinstance(body, BaseException) else SSEDecoder().feed(body)
    return bool(events) and events[-1].event == "error" and b"shutting down" in events[-1].data


async def test_every_stream_abandoned_at_shutdown_is_logged_503_and_told_why(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    # Held after its first delta until the daemon has gone.
    fake_upstream.default = Reply(
        events=anthropic_text_stream(["x", "y"]), pause_after_frames=3, resume=asyncio.Event()
    )
    for _ in range(ROUNDS):
        d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)), server=SERVER)
        flags = [asyncio.Event() for _ in range(STREAMS)]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            clients = [asyncio.create_task(stream(http, d.url, f)) for f in flags]
            async with asyncio.timeout(20):
                await asyncio.gather(*(f.wait() for f in flags))
            d.send_signal(signal.SIGTERM)
            code = await d.wait(timeout=10)
            async with asyncio.timeout(5):
                bodies = await asyncio.gather(*clients, return_exceptions=True)
        assert code == 0
        [timed_out] = d.events("server.drain_timed_out")
        assert timed_out["abandoned"] == STREAMS
        done = d.events("request.completed")
        assert len(done) == STREAMS
        statuses = [(r["status"], r["client_disconnected"], r["error"]) for r in done]
        assert statuses == [(503, False, "abandoned at shutdown")] * STREAMS
        reasons = {a["reason"] for r in done for a in r["attempts"]}
        assert reasons == {"shutdown"}
        assert [told_of_the_shutdown(b) for b in bodies] == [True] * STREAMS


BODY_BYTES = b'{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}'


async def upload_in_two(port: int, resume: asyncio.Event | None) -> bytes:
    """POST with half the body, the rest once `resume` is set (never when None);
    the raw answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(BODY_BYTES)
    )
    writer.write(head + BODY_BYTES[:20])
    await writer.drain()
    if resume is not None:
        await resume.wait()
        writer.write(BODY_BYTES[20:])
        await writer.drain()
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_a_body_still_uploading_at_sigterm_is_in_flight(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("served"))
    config = chain_yaml(provider_yaml("a", fake_upstream.url))
    # Within the grace period the upload ends, and the request is served.
    d = await serve_process(config, server={"grace_period_s": 5})
    resume = asyncio.Event()
    client = asyncio.create_task(upload_in_two(d.port, resume))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{d.url}/v1/messages", data=BODY_BYTES) as resp:
            assert resp.status == 200  # a kept-alive connection, idle at SIGTERM
        d.send_signal(signal.SIGTERM)
        await d.wait_for_event("server.stopping")
        assert d.events("server.stopping")[0]["in_flight"] == 1
        # A request started on it now is refused, and its connection closed.
        async with http.post(f"{d.url}/v1/messages", data=BODY_BYTES) as resp:
            assert resp.status == 503 and resp.headers["connection"] == "close"
            assert b"shutting down" in await resp.read()
    resume.set()
    assert b"served" in await client
    assert await d.wait(timeout=10) == 0
    assert [r["status"] for r in d.events("request.completed")] == [200, 200]

    # Past it, the client is told and the request log says why.
    d = await serve_process(config, server={"grace_period_s": 0.3})
    client = asyncio.create_task(upload_in_two(d.port, None))
    await asyncio.sleep(0.2)
    d.send_signal(signal.SIGTERM)
    answer = await client
    assert await d.wait(timeout=10) == 0
    assert answer.startswith(b"HTTP/1.1 503"), answer[:80]
    assert b"overloaded_error" in answer and b"shutting down" in answer
    [done] = d.events("request.completed")
    assert (done["status"], done["error"]) == (503, "abandoned at shutdown")
