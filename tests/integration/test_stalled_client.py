"""A client that stops reading mid-stream: timeouts.total_s bounds the whole
attempt, its writes to the client included, so the provider's slot, the
in-flight entry and the upstream connection are given back, and the client,
which no longer reads, is cut off rather than waited for. The attempt is
the client's doing, as when it leaves: `interrupted`, never the provider's
failure (test_stalled_client_not_a_provider_failure.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from structlog.testing import capture_logs

from coderouterd.routing.streams import LAST_WORD_S, STALLED
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

TOTAL_S = 1.0
STREAM = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
# About 24 MB of text: far more than the socket buffers between the daemon
# and a client that reads nothing can hold.
FLOOD = Reply(events=anthropic_text_stream(["y" * 60_000] * 400))


@contextlib.asynccontextmanager
async def stalled_client(
    port: int, ask: dict[str, Any] | None = None
) -> AsyncIterator[asyncio.StreamReader]:
    """A request (`ask`, a streamed one by default) from a client that reads
    the response's head and then nothing more, with a small receive buffer
    so it fills quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    body = json.dumps(STREAM if ask is None else ask).encode()
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    async with asyncio.timeout(5):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    try:
        yield reader
    finally:
        writer.transport.abort()


async def read_to_the_end(reader: asyncio.StreamReader) -> None:
    """Read all the daemon left in the connection, until it ends or is reset."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(1 << 20):
            pass


async def start(start_daemon: StartDaemon, fake: FakeUpstream) -> RunningDaemon:
    return await start_daemon(
        chain_yaml(
            provider_yaml(
                "a",
                fake.url,
                extra=f"max_concurrent: 1\ntimeouts: {{total_s: {TOTAL_S}, idle_s: {TOTAL_S}}}",
            )
        )
    )


async def test_total_s_ends_a_stream_whose_client_stopped_reading(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(FLOOD, Reply(json=anthropic_message("next")))
    d = await start(start_daemon, fake_upstream)
    with capture_logs() as logs:
        async with stalled_client(int(d.url.rsplit(":", 1)[1])) as reader:
            sent = time.monotonic()
            # Without a bound on the writes this waits until the client leaves.
            await until(lambda: any(e["event"] == "request.completed" for e in logs), 10)
            ended = time.monotonic() - sent
            [slots] = [p.slots for p in status_of(d.daemon).providers if p.name == "a"]
            in_flight = status_of(d.daemon).in_flight
            await fake_upstream.wait_for_open_connections(0, timeout=2)
            # The daemon cut the connection: reading it now comes to an end.
            async with asyncio.timeout(5):
                await read_to_the_end(reader)
        # The slot it gave back serves the next request.
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
            message = await client.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    assert ended < TOTAL_S + LAST_WORD_S + 1.0
    assert slots is not None and slots.in_use == 0
    assert in_flight == ()
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["status"] == 499 and done["client_disconnected"] is True
    assert done["error"] == STALLED
    assert [(a["outcome"], a["reason"]) for a in done["attempts"]] == [
        ("interrupted", "client_disconnected")
    ]
    assert message.content[0].type == "text" and message.content[0].text == "next"
