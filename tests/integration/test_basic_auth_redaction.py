"""A base_url password goes as basic auth; an upstream that quotes the
request's headers back in an error quotes its token, which is redacted for
the client, the logs and the replay record, whatever characters the
password holds."""

from __future__ import annotations

import base64
from urllib.parse import quote

import aiohttp
import pytest
from structlog.testing import capture_logs

from coderouterd.scrub import sent_secrets
from coderouterd.state.db import open_db
from coderouterd.state.replay import get_replay
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error_body
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.state.replay_sessions import settle

pytestmark = pytest.mark.timeout(20)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def quoting_headers(req: Recorded) -> Reply:
    said = "headers: " + ", ".join(f"{k}: {v}" for k, v in req.headers.items())
    return Reply(status=400, json=anthropic_error_body("invalid_request_error", said))


PASSWORD = "pässwort-0123456789"  # noqa: S105 - a test value


async def test_a_non_ascii_passwords_basic_auth_token_quoted_back_by_the_upstream_is_redacted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = quoting_headers
    url = fake_upstream.url.replace("http://", f"http://proxyuser:{quote(PASSWORD)}@")
    d = await start_daemon(chain_yaml(provider_yaml("a", url)))
    with capture_logs() as logs:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{d.url}/v1/messages", json=BODY, headers={"x-request-id": "quoted"}
            ) as resp,
        ):
            status, text = resp.status, await resp.text()
    token = fake_upstream.requests[0].headers["authorization"].removeprefix("Basic ")
    # aiohttp sends the URL's user and password as latin-1 bytes.
    assert base64.b64decode(token) == f"proxyuser:{PASSWORD}".encode("latin-1")
    assert status == 400
    assert "Basic [redacted]" in text
    assert token not in text
    assert token not in repr(logs)
    await settle(d)
    conn = await open_db(d.state.path, readonly=True)
    try:
        record = await get_replay(conn, "quoted")
    finally:
        await conn.close()
    assert record is not None
    assert record.response_body is not None
    assert b"Basic [redacted]" in record.response_body
    assert token.encode() not in record.response_body


def test_the_tokens_looked_for_are_the_latin1_and_the_utf8_ones() -> None:
    found = sent_secrets({}, f"http://proxyuser:{quote(PASSWORD)}@host/v1")
    latin1 = base64.b64encode(f"proxyuser:{PASSWORD}".encode("latin-1")).decode()
    utf8 = base64.b64encode(f"proxyuser:{PASSWORD}".encode()).decode()
    assert {latin1, utf8} <= set(found)
