"""After SIGTERM every answer closes its connection, one sent from within its
handler (a whole reply, a stream) included: a client must not send its next
request on a connection that is about to go, and be refused 503 there."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe

pytestmark = pytest.mark.timeout(60)


def body(*, stream: bool) -> bytes:
    ask = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({**ask, "stream": stream}).encode()


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_an_answer_sent_during_the_grace_period_says_connection_close(
    serve_process: StartServe, fake_upstream: FakeUpstream, stream: bool
) -> None:
    # The provider answers once SIGTERM has come; no keep-alive ping starts
    # the stream before then (keepalive_after_s: 10).
    fake_upstream.default = Reply(
        json=anthropic_message("late"),
        events=anthropic_text_stream(["late"]) if stream else None,
        delay_before_headers=1.0,
    )
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)), server={"grace_period_s": 10}
    )
    async with aiohttp.ClientSession() as http:

        async def ask() -> tuple[int, str | None, bytes]:
            async with http.post(
                d.url + "/v1/messages",
                data=body(stream=stream),
                headers={"content-type": "application/json"},
            ) as resp:
                return resp.status, resp.headers.get("connection"), await resp.read()

        task = asyncio.create_task(ask())
        await fake_upstream.wait_for_requests(1, timeout=5)
        d.send_signal(signal.SIGTERM)
        status, connection, answer = await asyncio.wait_for(task, 10)
    assert status == 200 and b"late" in answer
    assert connection == "close"
    assert await d.wait(timeout=15) == 0


async def test_a_stream_begun_before_sigterm_closes_its_connection_when_it_ends(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    resume = asyncio.Event()
    fake_upstream.script(
        # message_start, content_block_start and a delta, then a wait.
        Reply(events=anthropic_text_stream(["one ", "two"]), pause_after_frames=3, resume=resume),
        # Keeps the daemon draining long after the stream has ended.
        Reply(json=anthropic_message("slow"), delay_before_headers=5.0),
    )
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)), server={"grace_period_s": 10}
    )
    sent = body(stream=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
    try:
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(sent) + sent
        )
        await writer.drain()
        head = b""
        async with asyncio.timeout(5):
            while b"content_block_delta" not in head:
                head += await reader.read(65536)
        # Its headers went out before the shutdown, and could not say so.
        assert b"\r\nconnection: close" not in head.lower()
        async with aiohttp.ClientSession() as http:
            slow = asyncio.create_task(http.post(d.url + "/v1/messages", data=body(stream=False)))
            await fake_upstream.wait_for_requests(2, timeout=5)
            d.send_signal(signal.SIGTERM)
            await d.wait_for_event("server.stopping")
            resume.set()
            # The end of the stream, then the end of the connection, while
            # the other request still holds the daemon.
            async with asyncio.timeout(2.5):
                rest = await reader.read()
            assert b"message_stop" in rest and rest.endswith(b"0\r\n\r\n")
            assert not slow.done()
            async with await slow as resp:
                assert resp.status == 200 and resp.headers["connection"] == "close"
    finally:
        writer.close()
    assert await d.wait(timeout=15) == 0
