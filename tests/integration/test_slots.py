"""max_concurrent: a backend that answers one request at a time is sent one at
a time. A second request goes on to the next provider of its chain, comes
back when the rest fail, or waits in line (kept alive with pings) when there
is none; a client that leaves the line frees its place; a probe waits too."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable

import aiohttp
import anthropic
import pytest
from multidict import CIMultiDict

from coderouterd.ctl.render import render_status
from coderouterd.state import reads
from coderouterd.status import status_of
from coderouterd.wire.sse import SSEDecoder
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

STREAM = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
PROFILES = """\
  - name: default
    providers: [local, cloud]
  - name: local-only
    providers: [local]
"""
FAST_PINGS = "server: {keepalive_after_s: 0.1, keepalive_interval_s: 0.1}\n"


async def start(start_daemon: StartDaemon, fake: FakeUpstream) -> RunningDaemon:
    return await start_daemon(
        chain_yaml(
            provider_yaml("local", fake.url, extra="max_concurrent: 1"),
            provider_yaml("cloud", fake.url),
            profiles=PROFILES,
            top=FAST_PINGS,
        )
    )


async def busy(
    start_daemon: StartDaemon, fake: FakeUpstream, then: Reply, mode: str = "default"
) -> tuple[RunningDaemon, asyncio.Task[Streamed], asyncio.Event]:
    """A daemon whose local backend answers a first stream, held after its
    first delta until the event is set; `then` is the fake's next reply."""
    resume = asyncio.Event()
    held = Reply(events=anthropic_text_stream(["local", "."]), pause_after_frames=3, resume=resume)
    fake.script(held, then)
    d = await start(start_daemon, fake)
    first = asyncio.create_task(stream(d.url, mode))
    await until(lambda: len(fake.requests) == 1)
    return d, first, resume


Streamed = tuple[CIMultiDict[str], list[tuple[str, dict]]]


async def stream(url: str, mode: str = "default") -> Streamed:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages", json=STREAM, headers={"x-coderouter-mode": mode}) as resp,
    ):
        data = await resp.read()
    return CIMultiDict(resp.headers), [
        (e.event, json.loads(e.data)) for e in SSEDecoder().feed(data)
    ]


def text_of(events: list[tuple[str, dict]]) -> str:
    return "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")


def slots_of(d: RunningDaemon) -> tuple[int, int]:
    local = next(p for p in status_of(d.daemon).providers if p.name == "local")
    assert local.slots is not None and local.slots.limit == 1
    return local.slots.in_use, local.slots.waiting


def client(d: RunningDaemon) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0, timeout=10)


async def test_a_busy_backend_passes_the_next_request_to_the_next_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d, first, resume = await busy(
        start_daemon, fake_upstream, Reply(json=anthropic_message("cloud"))
    )
    assert slots_of(d) == (1, 0)
    assert "1/1 slots busy" in render_status(status_of(d.daemon))
    async with client(d) as c:
        raw = await c.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "and this?"}]
        )
    assert (await raw.parse()).content[0].text == "cloud"  # type: ignore[union-attr]
    assert raw.headers["x-coderouter-provider"] == "cloud"
    assert raw.headers["x-coderouter-fallback-reason"] == "local=busy"
    resume.set()
    headers, events = await first
    assert headers["x-coderouter-provider"] == "local" and text_of(events) == "local."
    assert slots_of(d) == (0, 0)
    # Free again: the next request is local's.
    fake_upstream.script(Reply(events=anthropic_text_stream(["again"])))
    headers, events = await stream(d.url)
    assert headers["x-coderouter-provider"] == "local" and text_of(events) == "again"
    assert "x-coderouter-fallback-reason" not in headers


async def test_a_busy_backend_passed_over_is_tried_when_the_rest_fail(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    cloud_down = anthropic_error(500, "api_error", "cloud is down")
    d, first, resume = await busy(start_daemon, fake_upstream, cloud_down)
    fake_upstream.script(Reply(json=anthropic_message("local after all")))
    async with client(d) as c:
        second = asyncio.create_task(
            c.messages.with_raw_response.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "and this?"}]
            )
        )
        # Cloud failed; the request now waits for local's slot.
        await until(lambda: len(fake_upstream.requests) == 2 and slots_of(d) == (1, 1))
        resume.set()
        raw = await second
    await first
    assert (await raw.parse()).content[0].text == "local after all"  # type: ignore[union-attr]
    assert raw.headers["x-coderouter-provider"] == "local"
    assert raw.headers["x-coderouter-fallback-path"] == "local,cloud,local"
    assert raw.headers["x-coderouter-fallback-reason"] == "local=busy, cloud=http_500"
    assert slots_of(d) == (0, 0)


async def test_every_provider_rate_limited_after_a_wait_for_a_slot_is_a_429(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """local was busy, cloud said 429, then local, its slot free, said 429:
    every provider's last word was a rate limit, so the client's is too."""
    slow_down = anthropic_error(429, "rate_limit_error", "slow down")
    d, first, resume = await busy(start_daemon, fake_upstream, slow_down)
    fake_upstream.script(anthropic_error(429, "rate_limit_error", "local too"))
    async with client(d) as c:
        second = asyncio.create_task(
            c.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "and this?"}]
            )
        )
        await until(lambda: len(fake_upstream.requests) == 2 and slots_of(d) == (1, 1))
        resume.set()
        with pytest.raises(anthropic.RateLimitError) as info:
            await second
    await first
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "rate_limit_error"
    assert [(a["provider"], a["reason"]) for a in body["error"]["attempts"]] == [
        ("local", "busy"),
        ("cloud", "http_429"),
        ("local", "http_429"),
    ]


async def test_with_no_other_provider_a_stream_waits_in_line_kept_alive(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d, first, resume = await busy(
        start_daemon, fake_upstream, Reply(events=anthropic_text_stream(["second"])), "local-only"
    )
    second = asyncio.create_task(stream(d.url, "local-only"))
    await until(lambda: slots_of(d) == (1, 1))
    assert "1/1 slots busy, 1 waiting" in render_status(status_of(d.daemon))
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        metrics = (await resp.text()).splitlines()
    assert 'coderouterd_provider_slots_in_use{provider="local"} 1' in metrics
    assert 'coderouterd_provider_slots_waiting{provider="local"} 1' in metrics
    await asyncio.sleep(0.35)  # a few keep-alive intervals
    # The backend never had two requests at once.
    assert len(fake_upstream.requests) == 1
    resume.set()
    (_, first_events), (headers, events) = await asyncio.gather(first, second)
    assert text_of(first_events) == "local." and text_of(events) == "second"
    names = [n for n, _ in events]
    assert names.index("message_start") >= 2 and set(names[: names.index("message_start")]) == {
        "ping"
    }
    # The wait is on the attempt's record, apart from its own timings.
    await d.state.writer.flush()
    row = await d.state.writer.maintain(lambda c: reads.request(c, headers["x-request-id"]))
    assert row is not None
    [attempt] = row.attempts
    assert attempt.outcome == "ok" and attempt.queued_ms is not None
    assert attempt.queued_ms >= 300
    assert attempt.latency_ms is not None and attempt.latency_ms < attempt.queued_ms


async def unary(url: str, mode: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/v1/messages",
            json={**STREAM, "stream": False},
            headers={"x-coderouter-mode": mode},
        ) as resp,
    ):
        await resp.read()


@pytest.mark.parametrize("ask", [stream, unary], ids=["stream", "unary"])
async def test_a_client_that_leaves_the_line_frees_its_place(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    ask: Callable[[str, str], Awaitable[object]],
) -> None:
    d, first, resume = await busy(
        start_daemon, fake_upstream, Reply(events=anthropic_text_stream(["third"])), "local-only"
    )
    leaving = asyncio.create_task(ask(d.url, "local-only"))
    await until(lambda: slots_of(d) == (1, 1))
    leaving.cancel()
    # The daemon notices (a stream at its next ping; a unary request's
    # handler is cancelled as its connection closes) and leaves the line.
    await until(lambda: slots_of(d) == (1, 0))
    await d.state.writer.flush()
    with sqlite3.connect(d.state.path) as db:
        rows = db.execute("SELECT status, client_disconnected FROM requests").fetchall()
    assert rows == [(499, 1)]
    resume.set()
    await first
    assert slots_of(d) == (0, 0)
    _, events = await stream(d.url, "local-only")
    assert text_of(events) == "third"
    assert len(fake_upstream.requests) == 2


async def test_a_probe_waits_for_a_slot_instead_of_queueing_in_the_backend(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d, first, resume = await busy(
        start_daemon, fake_upstream, Reply(json=anthropic_message("pong")), "local-only"
    )
    probe = asyncio.create_task(d.daemon.healing.probe_now("local", uid=None))
    await until(lambda: slots_of(d) == (1, 1))
    assert len(fake_upstream.requests) == 1
    resume.set()
    outcome, _ = await probe
    await first
    assert outcome.ok
    assert [r.json["stream"] for r in fake_upstream.requests] == [True, False]


async def test_a_request_every_provider_passed_over_takes_whichever_slot_frees_first(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resumes = [asyncio.Event(), asyncio.Event()]
    fake_upstream.script(
        *(
            Reply(events=anthropic_text_stream([name]), pause_after_frames=3, resume=resume)
            for name, resume in zip(("one", "two"), resumes, strict=True)
        ),
        Reply(events=anthropic_text_stream(["third"])),
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url, extra="max_concurrent: 1"),
            provider_yaml("local2", fake_upstream.url, extra="max_concurrent: 1"),
            top=FAST_PINGS,
        )
    )
    first = asyncio.create_task(stream(d.url))
    await until(lambda: len(fake_upstream.requests) == 1)
    second = asyncio.create_task(stream(d.url))  # local is busy: local2
    await until(lambda: len(fake_upstream.requests) == 2)
    third = asyncio.create_task(stream(d.url))  # both busy: waits in both lines
    await until(lambda: all(p.slots and p.slots.waiting for p in status_of(d.daemon).providers))
    status = status_of(d.daemon)
    [waiting] = [r for r in status.in_flight if r.waiting_for]
    assert waiting.waiting_for == ("local", "local2") and waiting.provider is None
    assert "waiting for a slot: local, local2" in render_status(status)
    # local2 frees first: the third request is its, while local is still busy.
    resumes[1].set()
    headers, events = await asyncio.wait_for(third, 5)
    assert text_of(events) == "third"
    assert headers["x-coderouter-fallback-path"] == "local,local2,local2"
    assert headers["x-coderouter-fallback-reason"] == "local=busy, local2=busy"
    assert [(r.provider, r.waiting_for) for r in status_of(d.daemon).in_flight] == [("local", ())]
    # It left local's line: local's slot, once free, is nobody's.
    assert [p.slots.waiting for p in status_of(d.daemon).providers if p.slots] == [0, 0]
    resumes[0].set()
    await asyncio.gather(first, second)
    assert [p.slots.in_use for p in status_of(d.daemon).providers if p.slots] == [0, 0]
