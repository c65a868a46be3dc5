"""An upstream whose final status is a 1xx (an unsolicited 101 Switching
Protocols: a request misrouted to a websocket endpoint, a broken proxy)
failed: the next provider answers; nothing of it reaches the client."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from coderouterd.routing.verdict import Verdict, classify_status
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.raw_server import RawServer
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_an_informational_status_is_the_providers_failure(status: int) -> None:
    assert classify_status(status) is Verdict.NEXT


async def test_an_upstream_answering_101_falls_through_at_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    async def switching_protocols(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> None:
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        await writer.drain()
        # Holds the connection: a body read from it would wait for this.
        await asyncio.sleep(20)

    fake_upstream.default = Reply(json=anthropic_message("from b"))
    async with RawServer(switching_protocols) as broken:
        d = await start_daemon(
            chain_yaml(provider_yaml("a", broken.url), provider_yaml("b", fake_upstream.url))
        )
        client = anthropic.AsyncAnthropic(
            base_url=d.url, api_key="client-key", max_retries=0, timeout=5
        )
        async with client:
            raw = await client.messages.with_raw_response.create(**BODY)
    assert (await raw.parse()).content[0].text == "from b"
    assert raw.headers["x-coderouter-fallback-reason"] == "a=http_101"
