"""A client that sends its headers and then stalls its body is answered 408
once server.body_timeout_s has passed, in its dialect's envelope naming
`body`, and the connection is closed: it does not hold a connection and an
in-flight entry until it leaves (README: `server.body_timeout_s`). The
answer says `Connection: close`, so that a client retrying the 408 (both
SDKs do) does not send its retry on the connection being closed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import zlib

import pytest

from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream

PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


async def stalled_upload(d: RunningDaemon, path: str, head: bytes, *, gzip: bool) -> bytes:
    """Send headers promising 100000 bytes and only `head` of them; return
    everything the daemon sends until it closes the connection."""
    host, port = d.daemon.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    coding = b"Content-Encoding: gzip\r\n" if gzip else b""
    writer.write(
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + coding
        + b"Content-Length: 100000\r\n\r\n"
        + head
    )
    await writer.drain()
    try:
        async with asyncio.timeout(10):
            return await reader.read()  # to EOF: the daemon closes the connection
    finally:
        writer.close()


def split(reply: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
async def test_a_stalled_body_is_answered_408_in_the_clients_dialect_and_logged(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, dialect: str
) -> None:
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), top="server: {body_timeout_s: 0.5}\n")
    )
    reply = await stalled_upload(d, PATHS[dialect], b'{"model":"m",', gzip=False)
    status, headers, body = split(reply)
    assert status == 408
    assert headers["connection"].lower() == "close"
    message = "body: did not arrive in full within server.body_timeout_s (0.5 s)"
    if dialect == "anthropic":
        assert body["type"] == "error"
        assert body["error"] == {
            "type": "invalid_request_error",
            "message": message,
            "field": "body",
        }
    else:
        assert body["error"]["message"] == message
        assert body["error"]["param"] == "body"
        assert body["error"]["type"] == "invalid_request_error"
    assert len(d.daemon.inflight) == 0
    await d.state.writer.flush()
    con = sqlite3.connect(d.state.path)
    try:
        stored = list(con.execute("SELECT id, status, error FROM requests"))
    finally:
        con.close()
    assert stored == [(headers["x-request-id"], 408, message)]
    assert not fake_upstream.requests


async def test_a_stalled_gzip_body_has_the_same_deadline(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), top="server: {body_timeout_s: 0.5}\n")
    )
    squeezer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    head = squeezer.compress(b'{"model":"m","messages":[') + squeezer.flush(zlib.Z_SYNC_FLUSH)
    status, _, body = split(await stalled_upload(d, "/v1/messages", head, gzip=True))
    assert status == 408
    assert body["error"]["message"].startswith("body: did not arrive in full")  # type: ignore[index]
    assert len(d.daemon.inflight) == 0
