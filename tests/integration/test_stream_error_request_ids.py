"""Every Anthropic error event the daemon writes into a stream carries the
request's id as `request_id`, as its error responses and Anthropic's own
errors do: a stream cut after its commit point, one every provider failed
after keep-alive pings, an OpenAI backend's error told in Anthropic's words,
and a stream abandoned at shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import aiohttp
import pytest

from coderouterd.wire.sse import SSEDecoder
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error_body, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe

BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
FAST_PINGS = "server: {keepalive_after_s: 0.05, keepalive_interval_s: 0.05}\n"


def last_event(raw: bytes) -> tuple[str, Any]:
    last = SSEDecoder().feed(raw)[-1]
    return last.event, json.loads(last.data)


async def stream(url: str) -> tuple[str, tuple[str, Any]]:
    """The request id and the stream's last event."""
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/messages", json=BODY) as resp:
        assert resp.status == 200
        return resp.headers["x-request-id"], last_event(await resp.read())


async def test_the_error_event_of_a_stream_cut_after_its_commit_point_carries_the_request_id(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["one ", "two"]), disconnect_after_events=3)
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    rid, (name, error) = await stream(d.url)
    assert name == "error"
    assert error["request_id"] == rid
    assert error["error"]["type"] == "api_error"


async def test_the_error_event_after_pings_when_every_provider_failed_carries_the_request_id(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(
            status=503,
            json=anthropic_error_body("overloaded_error", "busy"),
            delay_before_headers=0.3,
        )
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url), top=FAST_PINGS))
    rid, (name, error) = await stream(d.url)
    assert name == "error"
    assert error["request_id"] == rid
    assert error["error"]["type"] == "overloaded_error"


async def test_an_openai_backends_error_chunk_told_an_anthropic_client_carries_the_request_id(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    def chunk(data: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    text = {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}
    fake_upstream.script(
        Reply(
            dialect="openai",
            writes=[chunk(text), chunk({"error": {"message": "decode failed", "type": "x"}})],
            delay_between_events=0.05,
        )
    )
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    rid, (name, error) = await stream(d.url)
    assert name == "error"
    assert error == {
        "type": "error",
        "error": {"type": "api_error", "message": "decode failed"},
        "request_id": rid,
    }


@pytest.mark.timeout(60)
async def test_the_shutdown_error_event_of_an_abandoned_stream_carries_the_request_id(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    # Held after its first delta until the daemon has gone.
    fake_upstream.default = Reply(
        events=anthropic_text_stream(["x", "y"]), pause_after_frames=3, resume=asyncio.Event()
    )
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)), server={"grace_period_s": 0.2}
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY) as resp,
    ):
        rid = resp.headers["x-request-id"]
        raw = await resp.content.readuntil(b"content_block_delta")
        d.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            raw += await resp.read()
    assert await d.wait(timeout=10) == 0
    name, error = last_event(raw)
    assert name == "error"
    assert error["request_id"] == rid
    assert "shutting down" in error["error"]["message"]
