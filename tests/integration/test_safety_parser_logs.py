"""A request head aiohttp's parser refuses puts no client key in the log."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.process import StartServe

pytestmark = pytest.mark.timeout(30)

CLIENT_KEY = "fake-client-key-do-not-log"

HEADS = {
    # A bearer token past aiohttp's 8190-byte field limit (a large SSO JWT).
    "oversized authorization": (
        b"Authorization: Bearer " + CLIENT_KEY.encode() + b"." + b"J" * 9000 + b"\r\n",
        "LineTooLong",
    ),
    # A pasted key with a stray control character.
    "control character in x-api-key": (
        b"x-api-key: " + CLIENT_KEY.encode() + b"\x01\r\n",
        "BadHttpMessage",
    ),
}


@pytest.mark.parametrize("head", list(HEADS))
async def test_a_refused_request_head_is_logged_without_the_client_key(
    serve_process: StartServe, fake_upstream: FakeUpstream, head: str
) -> None:
    line, error = HEADS[head]
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    host, port = d.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
        + line
        + b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    await writer.drain()
    async with asyncio.timeout(5):
        answer = await reader.read(200)
    writer.close()
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    logged = await d.wait_for_event("library.log")
    assert (logged["error"], logged["status"]) == (error, 400)
    assert [text[:200] for text in d.stderr_lines if CLIENT_KEY in text] == []
