"""Streams never lie: commit point, in-stream errors, keep-alive pings, client disconnects."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiohttp
import anthropic
import pytest
from structlog.testing import capture_logs

from coderouterd.wire.sse import SSEDecoder
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply, plan_frames

BODY = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
FAST_PINGS = "server: {keepalive_after_s: 0.1, keepalive_interval_s: 0.1}\n"


async def raw_stream(
    url: str, body: dict = BODY, headers: dict | None = None
) -> tuple[aiohttp.ClientResponse, list[tuple[str, dict]]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages", json=body, headers=headers or {}) as resp,
    ):
        data = await resp.read()
    events = SSEDecoder().feed(data)
    return resp, [(e.event, json.loads(e.data)) for e in events]


def text_of(events: list[tuple[str, dict]]) -> str:
    return "".join(
        d["delta"].get("text", "") for name, d in events if name == "content_block_delta"
    )


async def two_providers(
    start_daemon: StartDaemon, fake: FakeUpstream, top: str = "", a_extra: str = ""
) -> str:
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake.url, extra=a_extra), provider_yaml("b", fake.url), top=top
        )
    )
    return d.url


async def test_failure_after_content_ends_with_error_event(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["one ", "two ", "three"]), disconnect_after_events=4)
    )
    url = await two_providers(start_daemon, fake_upstream)
    with capture_logs() as logs:
        resp, events = await raw_stream(url)
    assert resp.status == 200
    names = [n for n, _ in events]
    assert names[:4] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]
    assert names[-1] == "error" and "message_stop" not in names
    assert events[-1][1]["error"]["type"] == "api_error"
    assert text_of(events) == "one two "
    # No fallback once content has reached the client.
    assert len(fake_upstream.requests) == 1
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["error"] and done["attempts"][0]["outcome"] == "failed"


async def test_usage_without_cache_counts_reaches_the_client_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # An Anthropic-compatible server that does not cache leaves the cache
    # counts out; clients read all four (Claude Code's status line did not).
    events = anthropic_text_stream(["hi"])
    events[0][1]["message"]["usage"] = {"input_tokens": 10, "output_tokens": 1}
    message = anthropic_message("hi")
    message["usage"] = {"input_tokens": 10, "output_tokens": 2, "service_tier": "x"}
    fake_upstream.script(Reply(events=events), Reply(json=message))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    _, got = await raw_stream(d.url)
    assert got[0][1]["message"]["usage"] == {
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    # Every other frame as it came.
    assert [e for _, e in got[1:]] == [e for _, e in events[1:]]
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{d.url}/v1/messages", json={**BODY, "stream": False})
        answer = await resp.json()
    assert answer["usage"] == {
        "input_tokens": 10,
        "output_tokens": 2,
        "service_tier": "x",
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert {k: v for k, v in answer.items() if k != "usage"} == {
        k: v for k, v in message.items() if k != "usage"
    }
    # What the daemon records: the counts the server did not give are unknown.
    await d.state.writer.flush()
    with sqlite3.connect(d.state.path) as db:
        rows = db.execute(
            "SELECT input_tokens, cache_read_input_tokens, cache_outcome FROM requests ORDER BY ts"
        ).fetchall()
    assert rows == [(10, None, "unknown"), (10, None, "unknown")]


async def test_complete_usage_leaves_the_stream_as_bytes(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    reply = Reply(events=anthropic_text_stream(["hi"]))
    fake_upstream.script(reply)
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY) as resp,
    ):
        raw = await resp.read()
    assert raw == b"".join(f for f in plan_frames(reply) if f is not None)


async def test_an_empty_stream_falls_back_to_the_next_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # A 200 whose event stream ends at once: nothing was sent to the client yet.
    fake_upstream.script(Reply(events=[]), Reply(events=anthropic_text_stream(["from b"])))
    url = await two_providers(start_daemon, fake_upstream)
    resp, events = await raw_stream(url)
    assert resp.headers["x-coderouter-provider"] == "b"
    assert text_of(events) == "from b" and events[-1][0] == "message_stop"


async def test_sdk_raises_on_mid_stream_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["one ", "two"]), disconnect_after_events=3)
    )
    url = await two_providers(start_daemon, fake_upstream)
    received = []
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError):
            async with client.messages.stream(
                model="m", max_tokens=10, messages=BODY["messages"]
            ) as stream:
                async for text in stream.text_stream:
                    received.append(text)
    assert received == ["one "]


async def test_missing_message_stop_is_surfaced(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["all of it"]), omit_message_stop=True))
    url = await two_providers(start_daemon, fake_upstream)
    _, events = await raw_stream(url)
    assert [n for n, _ in events][-2:] == ["message_delta", "error"]
    assert "message_stop" in events[-1][1]["error"]["message"]


async def test_malformed_event_after_commit_is_never_forwarded(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["a", "b"]), malformed_after_events=3))
    url = await two_providers(start_daemon, fake_upstream)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages", json=BODY) as resp,
    ):
        raw = await resp.read()
    assert b"{this is not json" not in raw
    events = SSEDecoder().feed(raw)
    assert events[-1].event == "error"
    assert all(json.loads(e.data) for e in events)


async def test_malformed_event_before_commit_falls_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["bad"]), malformed_after_events=1),
        Reply(events=anthropic_text_stream(["good"])),
    )
    url = await two_providers(start_daemon, fake_upstream)
    resp, events = await raw_stream(url)
    assert text_of(events) == "good"
    assert resp.headers["x-coderouter-fallback-reason"] == "a=protocol_error"


async def test_idle_timeout_mid_stream(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["a", "b", "c"]), delay_between_events=1.0)
    )
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["a", "b", "c"]), delay_between_events=1.0)
    )
    url = await two_providers(
        start_daemon, fake_upstream, a_extra="timeouts: {idle_s: 0.3, first_byte_s: 5}"
    )
    _, events = await raw_stream(url)
    assert events[-1][0] == "error"
    assert "timeout_idle" in events[-1][1]["error"]["message"]


async def test_keepalive_pings_while_the_upstream_is_silent_mid_stream(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # message_start, content_block_start and the first delta; then silence,
    # as from a backend that sends a long tool call only once it is whole.
    resume = asyncio.Event()
    fake_upstream.script(
        Reply(
            events=anthropic_text_stream(["before ", "after"]), pause_after_frames=3, resume=resume
        )
    )
    url = await two_providers(start_daemon, fake_upstream, top=FAST_PINGS)
    asyncio.get_running_loop().call_later(0.6, resume.set)
    _, events = await raw_stream(url)
    names = [n for n, _ in events]
    first, second = [i for i, n in enumerate(names) if n == "content_block_delta"]
    assert second - first > 3 and set(names[first + 1 : second]) == {"ping"}
    assert "ping" not in names[second:]
    assert text_of(events) == "before after" and names[-1] == "message_stop"


async def test_pings_mid_stream_do_not_hold_off_the_idle_limit(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(
            events=anthropic_text_stream(["a", "b"]), pause_after_frames=3, resume=asyncio.Event()
        )
    )
    url = await two_providers(
        start_daemon,
        fake_upstream,
        top=FAST_PINGS,
        a_extra="timeouts: {idle_s: 0.5, first_byte_s: 5}",
    )
    _, events = await raw_stream(url)
    names = [n for n, _ in events]
    assert names.count("ping") >= 2 and names[-1] == "error"
    assert "timeout_idle" in events[-1][1]["error"]["message"]
    assert text_of(events) == "a"


async def test_keepalive_pings_while_waiting_for_first_byte(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["slow answer"]), delay_before_first_event=0.6)
    )
    url = await two_providers(start_daemon, fake_upstream, top=FAST_PINGS)
    resp, events = await raw_stream(url)
    names = [n for n, _ in events]
    first_real = names.index("message_start")
    assert first_real >= 2 and set(names[:first_real]) == {"ping"}
    assert text_of(events) == "slow answer"
    # Headers went out with the first ping, before any provider was chosen.
    assert "x-coderouter-provider" not in resp.headers
    assert resp.headers["x-request-id"]


async def test_fallback_still_possible_after_pings(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["never"]), delay_before_first_event=5),
        Reply(events=anthropic_text_stream(["from b"])),
    )
    url = await two_providers(
        start_daemon, fake_upstream, top=FAST_PINGS, a_extra="timeouts: {first_byte_s: 0.5}"
    )
    _, events = await raw_stream(url)
    names = [n for n, _ in events]
    assert names.count("ping") >= 2
    assert names.count("message_start") == 1
    assert text_of(events) == "from b"
    assert names[-1] == "message_stop"


async def test_all_failed_after_pings_is_an_in_stream_overloaded_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["x"]), delay_before_first_event=0.4),
    )
    fake_upstream.default = anthropic_error(503, "overloaded_error", "busy")
    url = await two_providers(
        start_daemon, fake_upstream, top=FAST_PINGS, a_extra="timeouts: {first_byte_s: 0.3}"
    )
    resp, events = await raw_stream(url)
    assert resp.status == 200
    assert [n for n, _ in events][-1] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert set(n for n, _ in events[:-1]) == {"ping"}


async def test_client_error_after_pings_is_an_in_stream_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(
            **{
                **anthropic_error(400, "invalid_request_error", "nope").__dict__,
                "delay_before_headers": 0.4,
            }
        )
    )
    url = await two_providers(start_daemon, fake_upstream, top=FAST_PINGS)
    resp, events = await raw_stream(url)
    assert resp.status == 200
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "invalid_request_error"


async def test_client_disconnect_mid_stream_cancels_upstream(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["x"] * 50), delay_between_events=0.2))
    url = await two_providers(start_daemon, fake_upstream)
    with capture_logs() as logs:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/v1/messages", json=BODY) as resp,
        ):
            await resp.content.readuntil(b"content_block_delta")
        await fake_upstream.wait_for_disconnect(timeout=2)
        await fake_upstream.wait_for_open_connections(0, timeout=2)
        for _ in range(50):
            if any(e["event"] == "request.completed" for e in logs):
                break
            await asyncio.sleep(0.02)
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["client_disconnected"] is True and done["status"] == 499
    assert done["provider"] == "a"
    assert done["attempts"] == [
        {
            **done["attempts"][0],
            "provider": "a",
            "outcome": "interrupted",
            "reason": "client_disconnected",
        }
    ]
    # Cutting the client off says nothing about the provider's health.
    assert not any(e["event"] == "provider.failing" for e in logs)
    assert fake_upstream.pending == 0


async def test_client_disconnect_while_waiting_for_first_byte(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(hang=True))
    url = await two_providers(start_daemon, fake_upstream)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.3):
                async with http.post(f"{url}/v1/messages", json=BODY) as resp:
                    await resp.read()
    await fake_upstream.wait_for_disconnect(timeout=2)
    await fake_upstream.wait_for_open_connections(0, timeout=2)
    assert len(fake_upstream.requests) == 1


async def test_client_disconnect_during_non_streaming_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(hang=True))
    url = await two_providers(start_daemon, fake_upstream)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.3):
                async with http.post(f"{url}/v1/messages", json={**BODY, "stream": False}) as resp:
                    await resp.read()
    await fake_upstream.wait_for_disconnect(timeout=2)
    await fake_upstream.wait_for_open_connections(0, timeout=2)
    # The second provider is never tried for a client that has gone.
    assert len(fake_upstream.requests) == 1


async def test_frames_without_an_event_line_get_the_one_their_type_names(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # A server that writes data lines only; the SDK dispatches on event lines.
    events = anthropic_text_stream(["hello ", "world"])
    fake_upstream.script(
        Reply(writes=[b"data: " + json.dumps(d).encode() + b"\n\n" for _, d in events])
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    ask = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client,
        client.messages.stream(**ask) as stream,  # type: ignore[arg-type]
    ):
        names = [event.type async for event in stream]
        message = await stream.get_final_message()
    assert message.content[0].text == "hello world"  # type: ignore[union-attr]
    assert "message_stop" in names and message.stop_reason == "end_turn"
