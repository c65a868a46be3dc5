"""A pooled upstream connection on which the upstream wrote while it was
idle (a second response to the last request, a proxy replaying one) is not
reused: the next request would be answered with those bytes."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.raw_server import RawServer
from tests.fakes.transcripts import anthropic_message

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def http_answer(text: str) -> bytes:
    body = json.dumps(anthropic_message(text)).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


async def test_a_stray_response_on_an_idle_connection_is_not_taken_for_the_next_answer(
    start_daemon: StartDaemon,
) -> None:
    answered = 0
    stray_sent = asyncio.Event()

    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> None:
        nonlocal answered
        answered += 1
        writer.write(http_answer(f"answer {answered}"))
        await writer.drain()
        if answered == 1:
            # After the daemon has read the answer and pooled the connection.
            await asyncio.sleep(0.2)
            writer.write(http_answer("stray, for someone else"))
            await writer.drain()
            stray_sent.set()

    texts = []
    async with RawServer(script) as upstream:
        d = await start_daemon(chain_yaml(provider_yaml("a", upstream.url)))
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(f"{d.url}/v1/messages", json=BODY) as resp:
                    texts.append((await resp.json())["content"][0]["text"])
                await stray_sent.wait()
                await asyncio.sleep(0.1)  # the stray bytes reach the daemon
    assert texts == ["answer 1", "answer 2"]
    assert upstream.connections == 2
