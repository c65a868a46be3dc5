"""A provider's error that quotes the request's headers (some gateways and
debugging proxies do) hands neither the daemon's key nor a forwarded client
key to the client, the logs or the replay record."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from coderouterd.state.db import open_db
from tests.conftest import TEST_API_KEY, RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error_body, anthropic_text_stream, openai_text_stream
from tests.fakes.upstream import Dialect, FakeUpstream, Recorded, Reply

pytestmark = pytest.mark.timeout(20)

CLIENT_KEY = "fake-client-key-forwarded"
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
KEY = "api_key_env: A_KEY"
ENV = {"A_KEY": TEST_API_KEY}


def quoted(req: Recorded) -> str:
    return "headers: " + ", ".join(f"{k}: {v}" for k, v in req.headers.items())


def error_status(status: int, words: str = "upstream rejected the request") -> Callable[..., Reply]:
    def answer(req: Recorded) -> Reply:
        return Reply(
            status=status, json=anthropic_error_body("api_error", f"{words} ({quoted(req)})")
        )

    return answer


async def ask(d: RunningDaemon, *, stream: bool = False, **headers: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json={**BODY, "stream": stream}, headers=headers) as resp,
    ):
        return resp.status, await resp.text()


async def stored(d: RunningDaemon) -> bytes:
    """Every replay record's response, as stored."""
    await d.state.replays.drain()
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = await conn.execute_fetchall("SELECT response_body FROM replays")
    finally:
        await conn.close()
    assert rows, "the request was recorded"
    return b"".join(b[1:] if b[:1] == b"\x00" else zlib.decompress(b) for (b,) in rows if b)


async def test_an_error_status_quoting_the_daemons_key_reaches_no_one_with_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = error_status(400)
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url, extra=KEY)), env=ENV)
    with capture_logs() as logs:
        status, text = await ask(d)
    assert fake_upstream.requests[0].headers["x-api-key"] == TEST_API_KEY
    assert status == 400
    assert "x-api-key: [redacted]" in text
    assert TEST_API_KEY not in text
    assert TEST_API_KEY.encode() not in await stored(d)
    assert TEST_API_KEY not in repr(logs)


async def test_a_too_long_prompt_refusal_quoting_the_key_is_told_without_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = error_status(
        400, "prompt is too long: 250000 tokens > 200000 maximum"
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url, extra=KEY)), env=ENV)
    with capture_logs() as logs:
        status, text = await ask(d)
    assert status == 400
    assert "prompt is too long" in text
    too_long = [e for e in logs if e["event"] == "request.completed"]
    assert too_long and "[redacted]" in too_long[0]["attempts"][0]["detail"]
    assert TEST_API_KEY not in text + repr(logs)


async def test_a_forwarded_client_key_quoted_back_is_redacted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = error_status(401)
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url, extra="forward_client_key: true"))
    )
    status, text = await ask(d, **{"x-api-key": CLIENT_KEY})
    assert fake_upstream.requests[0].headers["x-api-key"] == CLIENT_KEY
    assert status == 401
    assert CLIENT_KEY not in text
    assert CLIENT_KEY.encode() not in await stored(d)


async def test_an_openai_compat_bearer_key_quoted_back_is_redacted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = error_status(400)
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat", extra=KEY)),
        env=ENV,
    )
    status, text = await ask(d)
    assert fake_upstream.requests[0].headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert status == 400
    assert TEST_API_KEY not in text


async def test_a_base_url_password_quoted_back_as_basic_auth_is_redacted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    password = "pw-0123456789-in-the-url"  # noqa: S105 - a test value
    token = base64.b64encode(f"proxyuser:{password}".encode()).decode()
    fake_upstream.responder = error_status(400)
    url = fake_upstream.url.replace("http://", f"http://proxyuser:{password}@")
    d = await start_daemon(chain_yaml(provider_yaml("a", url)))
    status, text = await ask(d)
    assert fake_upstream.requests[0].headers["authorization"] == f"Basic {token}"
    assert status == 400
    assert token not in text and password not in text


def stream_then_error(head: list[tuple[str, Any]], dialect: Dialect) -> Callable[..., Reply]:
    """A stream that fails after `head` with an error event quoting the request's headers."""

    def answer(req: Recorded) -> Reply:
        said = ("error", anthropic_error_body("api_error", f"stream failed ({quoted(req)})"))
        if dialect == "openai":
            said = ("", {"error": {"message": f"stream failed ({quoted(req)})", "type": "x"}})
        return Reply(events=[*head, said], dialect=dialect, omit_message_stop=True)

    return answer


async def test_a_streams_error_event_quoting_the_key_after_content_is_forwarded_without_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    head = anthropic_text_stream(["Hel", "lo"])[:3]
    fake_upstream.responder = stream_then_error(head, "anthropic")
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url, extra=KEY)), env=ENV)
    with capture_logs() as logs:
        status, text = await ask(d, stream=True)
    assert status == 200
    assert "Hel" in text and "event: error" in text and "[redacted]" in text
    assert TEST_API_KEY not in text + repr(logs)
    assert TEST_API_KEY.encode() not in await stored(d)


async def test_a_translated_streams_error_quoting_the_key_is_forwarded_without_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    head = openai_text_stream(["Hel", "lo"])[:3]
    fake_upstream.responder = stream_then_error(head, "openai")
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat", extra=KEY)),
        env=ENV,
    )
    status, text = await ask(d, stream=True)
    assert status == 200
    assert "Hel" in text and "event: error" in text
    assert TEST_API_KEY not in text


async def test_a_streams_too_long_refusal_before_content_is_told_without_the_key(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """llama.cpp and sglang refuse a stream's prompt with an error event after a 200."""

    def answer(req: Recorded) -> Reply:
        words = f"prompt is too long: 250000 tokens > 200000 maximum ({quoted(req)})"
        return Reply(events=[("error", anthropic_error_body("invalid_request_error", words))])

    fake_upstream.responder = answer
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url, extra=KEY)), env=ENV)
    with capture_logs() as logs:
        status, text = await ask(d, stream=True)
    assert status == 400
    assert "prompt is too long" in text
    assert TEST_API_KEY not in text + repr(logs)
