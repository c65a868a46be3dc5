"""`ctl status` counts a request's age from its first byte, as shutdown and
the request log do, not from the moment its body was read and routed."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_pace import MovedClock

pytestmark = pytest.mark.timeout(30)

_BODY = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}'


async def test_a_request_whose_body_took_a_minute_to_upload_is_a_minute_old(
    start_daemon: StartDaemon,
) -> None:
    clock = MovedClock()
    async with FakeUpstream(default=Reply(hang=True)) as a:
        d = await start_daemon(chain_yaml(provider_yaml("a", a.url)), clock=clock)
        host, port = d.daemon.listen.rsplit(":", 1)
        _reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(_BODY)}\r\n\r\n".encode()
                + _BODY[:10]
            )
            await writer.drain()
            await until(lambda: len(d.daemon.inflight) == 1, timeout=5)
            clock.advance(60)
            writer.write(_BODY[10:])
            await writer.drain()
            await a.wait_for_requests(1, 5)
            [entry] = d.daemon.status().in_flight
        finally:
            writer.close()
    assert (entry.provider, entry.profile, entry.dialect) == ("a", "default", "anthropic")
    assert entry.age_s >= 60, entry
    # One request, listed twice.
    assert d.daemon.inflight.started == 1
