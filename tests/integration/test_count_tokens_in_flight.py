"""A count_tokens request whose body is still arriving is in flight: counted
in `in_flight_requests`, and given its grace period by a SIGTERM (README:
Signals, "a request whose body is still arriving is one")."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.process import ServeProcess, StartServe

pytestmark = pytest.mark.timeout(60)

BODY = b'{"model":"m","messages":[{"role":"user","content":"count these words please"}]}'


async def in_flight(d: ServeProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        text = await resp.text()
    [line] = [x for x in text.splitlines() if x.startswith("coderouterd_in_flight_requests ")]
    return int(float(line.split()[1]))


async def test_a_count_tokens_body_still_uploading_at_sigterm_gets_its_grace_period(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)), server={"grace_period_s": 10}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
    try:
        writer.write(
            b"POST /v1/messages/count_tokens HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY[:20]
        )
        await writer.drain()
        async with asyncio.timeout(10):
            while await in_flight(d) != 1:  # noqa: ASYNC110 - another process's state
                await asyncio.sleep(0.05)
        d.send_signal(signal.SIGTERM)
        stopping = await d.wait_for_event("server.stopping")
        # Past aiohttp's own 1 s shutdown timeout, well within the grace period.
        await asyncio.sleep(1.5)
        writer.write(BODY[20:])
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    assert stopping["in_flight"] == 1
    assert answer.startswith(b"HTTP/1.1 200"), answer[:120]
    assert b'"input_tokens"' in answer
    assert await d.wait(10) == 0
