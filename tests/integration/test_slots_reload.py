"""max_concurrent across reloads: a reload changes a provider's limit in place.
The requests waiting for a slot go at once when the limit goes, and the
requests running keep counting against the provider's limit whatever reloads
take it away and bring it back, or take the provider away and bring it back."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from coderouterd.status import status_of
from coderouterd.wire.sse import SSEDecoder
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

STREAM = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


def limited(url: str, limit: int | None) -> str:
    extra = "" if limit is None else f"max_concurrent: {limit}"
    return chain_yaml(provider_yaml("local", url, extra=extra))


def held(text: str, resume: asyncio.Event) -> Reply:
    """A stream that stops after its first delta until `resume` is set."""
    return Reply(events=anthropic_text_stream([text]), pause_after_frames=3, resume=resume)


async def stream(url: str) -> str:
    """The text the daemon streams back to one request."""
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/messages", json=STREAM) as r:
        data = await r.read()
    events = [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(data)]
    return "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")


async def reload(d: RunningDaemon, config: str) -> None:
    d.config_path.write_text(config)
    assert (await d.daemon.reload()).ok


def slots_of(d: RunningDaemon) -> tuple[int, int, int] | None:
    """local's limit, slots in use and requests waiting, as `ctl status` shows them."""
    local = next(p for p in status_of(d.daemon).providers if p.name == "local")
    return (
        None
        if local.slots is None
        else (local.slots.limit, local.slots.in_use, local.slots.waiting)
    )


async def metric(d: RunningDaemon, name: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        lines = (await resp.text()).splitlines()
    [line] = [line for line in lines if line.startswith(f'coderouterd_{name}{{provider="local"}}')]
    return line.rsplit(" ", 1)[1]


async def test_a_reload_that_drops_max_concurrent_lets_the_waiting_request_in(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resume = asyncio.Event()
    fake_upstream.script(held("first", resume), Reply(events=anthropic_text_stream(["second"])))
    d = await start_daemon(limited(fake_upstream.url, 1))
    first = asyncio.create_task(stream(d.url))
    await until(lambda: len(fake_upstream.requests) == 1)
    second = asyncio.create_task(stream(d.url))
    await until(lambda: slots_of(d) == (1, 1, 1))
    await reload(d, limited(fake_upstream.url, None))
    # Not gated any more: the waiting request is answered while the first still runs.
    assert await asyncio.wait_for(second, 5) == "second"
    assert not first.done() and slots_of(d) is None
    resume.set()
    assert await first == "first"


async def test_a_limit_removed_and_restored_by_reloads_still_counts_the_running_request(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resume = asyncio.Event()
    fake_upstream.script(held("first", resume), Reply(events=anthropic_text_stream(["second"])))
    d = await start_daemon(limited(fake_upstream.url, 1))
    first = asyncio.create_task(stream(d.url))
    await until(lambda: len(fake_upstream.requests) == 1)
    await reload(d, limited(fake_upstream.url, None))
    await reload(d, limited(fake_upstream.url, 1))
    assert slots_of(d) == (1, 1, 0), "the running request holds local's only slot"
    assert await metric(d, "provider_slots_in_use") == "1"
    second = asyncio.create_task(stream(d.url))
    await until(lambda: slots_of(d) == (1, 1, 1))
    await asyncio.sleep(0.1)
    assert len(fake_upstream.requests) == 1, "a max_concurrent: 1 backend got two at once"
    resume.set()
    assert (await first, await second) == ("first", "second")
    assert slots_of(d) == (1, 0, 0)


async def test_requests_sent_while_a_provider_had_no_limit_count_when_it_gets_one_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resumes = [asyncio.Event(), asyncio.Event()]
    fake_upstream.script(
        held("one", resumes[0]), held("two", resumes[1]), Reply(events=anthropic_text_stream(["3"]))
    )
    d = await start_daemon(limited(fake_upstream.url, 1))
    await reload(d, limited(fake_upstream.url, None))
    running = [asyncio.create_task(stream(d.url)) for _ in range(2)]
    await until(lambda: len(fake_upstream.requests) == 2)
    await reload(d, limited(fake_upstream.url, 1))
    third = asyncio.create_task(stream(d.url))
    await until(lambda: slots_of(d) == (1, 2, 1))
    # One of the two done leaves one running: the only slot is still taken.
    resumes[0].set()
    await until(lambda: slots_of(d) == (1, 1, 1))
    await asyncio.sleep(0.1)
    assert len(fake_upstream.requests) == 2
    resumes[1].set()
    assert await asyncio.wait_for(third, 5) == "3"
    assert await asyncio.gather(*running) == ["one", "two"]


async def test_a_provider_removed_and_added_back_still_counts_its_running_request(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resume = asyncio.Event()
    fake_upstream.script(held("first", resume), Reply(events=anthropic_text_stream(["second"])))
    d = await start_daemon(limited(fake_upstream.url, 1))
    first = asyncio.create_task(stream(d.url))
    await until(lambda: len(fake_upstream.requests) == 1)
    await reload(d, chain_yaml(provider_yaml("other", fake_upstream.url)))
    await reload(d, limited(fake_upstream.url, 1))
    assert slots_of(d) == (1, 1, 0)
    second = asyncio.create_task(stream(d.url))
    await until(lambda: slots_of(d) == (1, 1, 1))
    assert len(fake_upstream.requests) == 1
    resume.set()
    assert (await first, await second) == ("first", "second")
