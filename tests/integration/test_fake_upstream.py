"""Self-tests of the fake upstream, driven by a plain aiohttp client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.fakes import upstream
from tests.fakes.transcripts import (
    anthropic_error,
    anthropic_message,
    anthropic_stream_error,
    anthropic_text_stream,
    openai_completion,
    openai_error,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply, plan_frames

# A module-level name is what makes pytest collect the fixture here.
fake_upstream = upstream.fake_upstream

STREAM_BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
PLAIN_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def parse_sse(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name or None, data text) per frame."""
    frames = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name = None
        data = ""
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data = value
        frames.append((name, data))
    return frames


async def read_frames_until_error(
    response: aiohttp.ClientResponse,
) -> tuple[bytes, Exception | None]:
    received = b""
    try:
        async for chunk in response.content.iter_any():
            received += chunk
    except aiohttp.ClientPayloadError as exc:
        return received, exc
    return received, None


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with session.post(url, json=body) as response:
        return response.status, await response.read()


async def test_scripted_text_stream_arrives_in_order(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    events = anthropic_text_stream(["Hel", "lo", "!"], ping=True)
    fake_upstream.script(Reply(events=events))
    async with session.post(f"{fake_upstream.url}/v1/messages", json=STREAM_BODY) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        frames = parse_sse(await response.read())
    assert [name for name, _ in frames] == [name for name, _ in events]
    assert [json.loads(data) for _, data in frames] == [data for _, data in events]
    text = "".join(
        json.loads(data)["delta"]["text"] for name, data in frames if name == "content_block_delta"
    )
    assert text == "Hello!"


def test_anthropic_text_stream_has_complete_usage_and_block_order() -> None:
    events = anthropic_text_stream(["a"], input_tokens=7, output_tokens=3)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = events[0][1]["message"]
    assert message["usage"] == {
        "input_tokens": 7,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert message["stop_reason"] is None
    assert events[4][1]["usage"] == {"output_tokens": 3}


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(529, "overloaded_error"), (429, "rate_limit_error"), (400, "invalid_request_error")],
)
async def test_error_status_and_envelope_come_through_on_a_streaming_request(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession, status: int, error_type: str
) -> None:
    fake_upstream.script(anthropic_error(status, error_type, "nope"))
    async with session.post(f"{fake_upstream.url}/v1/messages", json=STREAM_BODY) as response:
        assert response.status == status
        assert response.headers["Content-Type"] == "application/json"
        assert await response.json() == {
            "type": "error",
            "error": {"type": error_type, "message": "nope"},
        }


async def test_non_streaming_json_raw_body_and_headers(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.script(
        Reply(json=anthropic_message("hi"), headers={"request-id": "req_1"}),
        Reply(
            status=502,
            raw_body=b"<html>bad gateway</html>",
            headers={"Content-Type": "text/html"},
        ),
    )
    url = f"{fake_upstream.url}/v1/messages"
    async with session.post(url, json=PLAIN_BODY) as response:
        assert response.headers["request-id"] == "req_1"
        assert (await response.json())["content"] == [{"type": "text", "text": "hi"}]
    async with session.post(url, json=PLAIN_BODY) as response:
        assert response.status == 502
        assert response.headers["Content-Type"] == "text/html"
        assert await response.read() == b"<html>bad gateway</html>"


async def test_pacing_between_events_is_observable(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    events = anthropic_text_stream([])  # 5 events, 4 gaps
    fake_upstream.script(
        Reply(events=events, delay_before_first_event=0.05, delay_between_events=0.02)
    )
    async with session.post(f"{fake_upstream.url}/v1/messages", json=STREAM_BODY) as response:
        headers_at = time.monotonic()
        first = await response.content.readuntil(b"\n\n")
        first_at = time.monotonic()
        rest = await response.read()
        done_at = time.monotonic()
    assert first.startswith(b"event: message_start")
    assert len(parse_sse(first + rest)) == 5
    assert first_at - headers_at >= 0.04
    assert done_at - first_at >= 0.06


async def test_delay_before_headers_holds_the_status_line(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("x"), delay_before_headers=0.05))
    started = time.monotonic()
    async with session.post(f"{fake_upstream.url}/v1/messages", json=PLAIN_BODY) as response:
        assert time.monotonic() - started >= 0.04
        assert response.status == 200


async def test_disconnect_after_events_cuts_the_stream(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["a", "b", "c"]), disconnect_after_events=3)
    )
    async with session.post(f"{fake_upstream.url}/v1/messages", json=STREAM_BODY) as response:
        received, error = await read_frames_until_error(response)
    assert isinstance(error, aiohttp.ClientPayloadError)
    assert [name for name, _ in parse_sse(received)] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]
    # The fake cut the connection itself; that is not a client going away.
    assert fake_upstream.disconnects_seen == 0


async def test_omit_message_stop_ends_the_body_cleanly_without_it(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["a"]), omit_message_stop=True))
    async with session.post(f"{fake_upstream.url}/v1/messages", json=STREAM_BODY) as response:
        frames = parse_sse(await response.read())
    assert [name for name, _ in frames][-1] == "message_delta"


async def test_malformed_frame_is_inserted_and_the_stream_goes_on(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    events = [*anthropic_text_stream(["a"])[:3], anthropic_stream_error("api_error", "boom")]
    fake_upstream.script(Reply(events=events, malformed_after_events=2))
    async with session.post(f"{fake_upstream.url}/v1/messages", json=STREAM_BODY) as response:
        frames = parse_sse(await response.read())
    assert len(frames) == 5
    assert frames[2][0] == "content_block_delta"
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[2][1])
    assert json.loads(frames[4][1])["error"]["type"] == "api_error"


async def test_hang_then_client_cancel_counts_a_disconnect(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.script(Reply(hang=True))
    request = asyncio.create_task(post(session, f"{fake_upstream.url}/v1/messages", STREAM_BODY))
    await fake_upstream.wait_for_requests(1, timeout=1.0)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await fake_upstream.wait_for_disconnect(timeout=1.0)
    assert fake_upstream.disconnects_seen == 1


async def test_client_leaving_mid_stream_counts_a_disconnect(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["x"] * 20), delay_between_events=0.02))
    async with session.post(f"{fake_upstream.url}/v1/messages", json=STREAM_BODY) as response:
        await response.content.readuntil(b"\n\n")
        response.close()
    await fake_upstream.wait_for_disconnect(timeout=1.0)
    assert fake_upstream.disconnects_seen == 1


async def test_open_connections_return_to_zero_after_the_session_closes(
    fake_upstream: FakeUpstream,
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("a")), Reply(json=anthropic_message("b")))
    async with aiohttp.ClientSession() as client:
        await post(client, f"{fake_upstream.url}/v1/messages", PLAIN_BODY)
        await post(client, f"{fake_upstream.url}/v1/messages", PLAIN_BODY)
        # Keep-alive: both requests share one connection.
        assert fake_upstream.open_connections == 1
    await fake_upstream.wait_for_open_connections(0, timeout=1.0)
    assert fake_upstream.open_connections == 0


async def test_queue_is_fifo_then_default_then_a_clear_500(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeUpstream() as fake:
        url = f"{fake.url}/v1/messages"
        fake.script(Reply(status=201, json={"n": 1}), Reply(status=202, json={"n": 2}))
        fake.script(Reply(status=203, json={"n": 3}))
        results = [await post(session, url, PLAIN_BODY) for _ in range(3)]
        assert [status for status, _ in results] == [201, 202, 203]
        assert [json.loads(body)["n"] for _, body in results] == [1, 2, 3]
        assert fake.pending == 0

        status, body = await post(session, url, PLAIN_BODY)
        assert status == 500
        assert "no scripted reply" in json.loads(body)["error"]["message"]

        fake.default = Reply(status=204)
        assert (await post(session, url, PLAIN_BODY))[0] == 204


async def test_requests_are_recorded_with_headers_and_body(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    headers = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
    async with session.post(
        f"{fake_upstream.url}/v1/messages?beta=true", json=STREAM_BODY, headers=headers
    ) as response:
        await response.read()
    async with session.get(f"{fake_upstream.url}/v1/models") as response:
        assert (await response.json())["data"][0]["id"] == "fake-model"
    first, second = fake_upstream.requests
    assert (first.method, first.path, first.query_string) == ("POST", "/v1/messages", "beta=true")
    assert first.headers["X-Api-Key"] == "sk-test"
    assert first.json == STREAM_BODY
    assert json.loads(first.body) == STREAM_BODY
    assert (second.method, second.path, second.json) == ("GET", "/v1/models", None)


async def test_openai_stream_has_no_event_lines_and_ends_with_done(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.script(Reply(events=openai_text_stream(["Hi", " there"]), dialect="openai"))
    url = f"{fake_upstream.url}/openai/v1/chat/completions"
    async with session.post(url, json=STREAM_BODY) as response:
        raw = await response.read()
    assert raw.endswith(b"data: [DONE]\n\n")
    assert b"event:" not in raw
    frames = parse_sse(raw)
    chunks = [json.loads(data) for _, data in frames[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == "Hi there"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 15


async def test_openai_non_streaming_completion_and_error(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    fake_upstream.script(
        Reply(json=openai_completion("hello"), dialect="openai"),
        openai_error(429, "slow down", error_type="rate_limit_exceeded"),
    )
    url = f"{fake_upstream.url}/chat/completions"
    status, body = await post(session, url, PLAIN_BODY)
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "hello"
    status, body = await post(session, url, STREAM_BODY)
    assert status == 429
    assert json.loads(body)["error"]["type"] == "rate_limit_exceeded"


def test_openai_omit_drops_done_and_cut_comes_before_it() -> None:
    events = openai_text_stream(["a"], include_usage=False)
    omitted = plan_frames(Reply(events=events, dialect="openai", omit_message_stop=True))
    assert omitted[-1] is not None
    assert b"[DONE]" not in omitted[-1]
    cut = plan_frames(Reply(events=events, dialect="openai", disconnect_after_events=len(events)))
    assert cut[-1] is None


async def test_get_probes_and_unknown_routes(
    fake_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{fake_upstream.url}/api/version") as response:
        assert "version" in await response.json()
    async with session.post(f"{fake_upstream.url}/v1/other", json={}) as response:
        assert response.status == 404
    assert fake_upstream.pending == 0


async def test_close_does_not_wait_for_a_hung_handler(session: aiohttp.ClientSession) -> None:
    fake = FakeUpstream(default=Reply(hang=True))
    await fake.start()
    request = asyncio.create_task(post(session, f"{fake.url}/v1/messages", STREAM_BODY))
    await fake.wait_for_requests(1, timeout=1.0)
    async with asyncio.timeout(2.0):  # guards against a hang, not a speed claim
        await fake.close()
    with pytest.raises(aiohttp.ClientError):
        await request
    assert fake.disconnects_seen == 0
