"""A request that waits in line for a provider's slot is not sent to it once
it is taken out of rotation meanwhile (README, "How a request is routed":
the plan's skips hold as each attempt starts): by hand under every profile,
as unhealthy under an `exclude` profile, cooling down under a `skip` one;
the soft reasons never leave a request with nothing to try."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from coderouterd.routing.slots import Slots
from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import (
    anthropic_error,
    anthropic_message,
    anthropic_stream_error,
    anthropic_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
OUT_OF_MEMORY = "model requires more system memory (5.2 GiB) than is available (3.1 GiB)"
# No recovery probe reaches a provider excluded as unhealthy while a test runs.
NO_PROBES = "self_healing: {recovery_initial_interval_s: 60}\n"
# What each kind of failure makes of the provider, and the reason a profile skips it for.
UNHEALTHY = "unhealthy"
COOLING = "cooling"
# A profile's `backend_health_threshold: 2` excludes after 4 failed attempts
# in a row: the first 3 quick ones, the last held until the test says.
HEALTH = "backend_health_action: exclude, backend_health_threshold: 2"
BUSY = anthropic_error(503, "overloaded_error", "busy")


async def post(
    d: RunningDaemon, *, stream: bool = False, model: str = "m"
) -> tuple[int, dict[str, str], Any]:
    """One Messages request: its status, headers and body (JSON, or the
    stream's bytes)."""
    body = {"model": model, "max_tokens": 10, "messages": MESSAGES, "stream": stream}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s,
        s.post(d.url + "/v1/messages", json=body) as r,
    ):
        raw = await r.read()
        is_json = r.content_type == "application/json"
        return r.status, dict(r.headers), await r.json() if is_json else raw


def held_stream(resume: asyncio.Event, *, error: tuple[str, str] | None = None) -> Reply:
    """A stream that holds its slot until `resume`: then it ends, or it says
    `error` (type, message) before any content."""
    events = anthropic_text_stream(["held"])
    if error is not None:
        events = [events[0], anthropic_stream_error(*error)]
    return Reply(events=events, pause_after_frames=1, resume=resume)


def waiting(slots: Slots, **lines: int) -> bool:
    """Whether each named provider has that many requests in line for a slot."""
    return all((g := slots.gate(n)) is not None and g.waiting == w for n, w in lines.items())


async def test_a_request_waiting_for_a_slot_is_not_sent_to_a_provider_excluded_by_hand_meanwhile(
    start_daemon: StartDaemon,
) -> None:
    """`local` (max_concurrent: 1) answers a stream; a second request waits
    for its slot; the operator runs `ctl exclude local`. The waiting request
    is not sent to it, and ends with the error a new request gets."""
    resume = asyncio.Event()
    async with FakeUpstream(default=Reply(json=anthropic_message("local"))) as up:
        up.script(held_stream(resume))
        d = await start_daemon(
            "providers:"
            + provider_yaml("local", up.url, extra="max_concurrent: 1")
            + "profiles:\n  - {name: default, providers: [local]}\n"
        )
        first = asyncio.create_task(post(d, stream=True))
        await up.wait_for_requests(1, timeout=5)
        second = asyncio.create_task(post(d))
        await until(lambda: waiting(d.daemon.slots, local=1))
        await d.daemon.provider_action("exclude", "local", None)
        resume.set()
        assert (await first)[0] == 200
        status, _, waited = await second
        new_status, _, new = await post(d)
    assert len(up.requests) == 1, "the excluded provider was sent the queued request"
    assert (status, new_status) == (503, 503)
    assert waited["error"]["attempts"] == new["error"]["attempts"]
    assert [(a["provider"], a["reason"]) for a in waited["error"]["attempts"]] == [
        ("local", "excluded_manual")
    ]
    assert waited["error"]["type"] == new["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("outcome", "reason"), [(UNHEALTHY, "excluded"), (COOLING, "memory_pressure")]
)
async def test_a_request_waiting_for_slots_skips_a_provider_its_profile_skips_since(
    start_daemon: StartDaemon, outcome: str, reason: str
) -> None:
    """Chain [local, cloud], each max_concurrent: 1 and busy: a request waits
    in line at both. `local` is taken out of rotation as its slot frees (the
    request holding it fails: a second failure in a row excludes it as
    unhealthy under `backend_health_action: exclude`; running out of memory
    cools it down under `memory_pressure_action: skip`). The waiting request
    is not sent to it, and goes to `cloud` once it frees a slot."""
    local_free, cloud_free = asyncio.Event(), asyncio.Event()
    async with (
        FakeUpstream(default=Reply(json=anthropic_message("local"))) as local,
        FakeUpstream(default=Reply(json=anthropic_message("cloud"))) as cloud,
    ):
        if outcome == UNHEALTHY:
            local.script(BUSY, BUSY, BUSY, held_stream(local_free, error=("overloaded_error", "b")))
        else:
            local.script(held_stream(local_free, error=("api_error", OUT_OF_MEMORY)))
        cloud.script(held_stream(cloud_free))
        d = await start_daemon(
            NO_PROBES
            + "providers:"
            + provider_yaml("local", local.url, extra="max_concurrent: 1")
            + provider_yaml("cloud", cloud.url, extra="max_concurrent: 1")
            + f"profiles:\n  - {{name: default, providers: [local, cloud], {HEALTH},"
            " memory_pressure_action: skip}\n"
        )
        if outcome == UNHEALTHY:
            for _ in range(3):
                assert (await post(d, model="local"))[0] == 503
        # Each slot held: `cloud` by a stream, `local` by one about to fail.
        held_cloud = asyncio.create_task(post(d, stream=True, model="cloud"))
        await cloud.wait_for_requests(1, timeout=5)
        sent_to_local = len(local.requests) + 1
        failing = asyncio.create_task(post(d, stream=True, model="local"))
        await local.wait_for_requests(sent_to_local, timeout=5)
        queued = asyncio.create_task(post(d))
        await until(lambda: waiting(d.daemon.slots, local=1, cloud=1))

        local_free.set()
        assert (await failing)[0] == 503
        book = d.daemon.healing.book
        assert (book.excluded() if outcome == UNHEALTHY else book.cooling()) == {"local"}
        # Passed over as its slot came free: still in line at `cloud` alone.
        await until(lambda: waiting(d.daemon.slots, local=0, cloud=1))
        cloud_free.set()
        assert (await held_cloud)[0] == 200
        status, headers, _ = await queued
    assert len(local.requests) == sent_to_local, "sent to a provider its profile skips"
    assert status == 200
    assert headers["x-coderouter-provider"] == "cloud"
    assert headers["x-coderouter-fallback-reason"].split(", ")[-1] == f"local={reason}"


async def test_a_request_waiting_for_its_last_provider_tries_it_though_excluded_as_unhealthy(
    start_daemon: StartDaemon,
) -> None:
    """Chain [local] under `backend_health_action: exclude`: self-healing
    excludes `local` while a request waits for its slot. As in the plan, an
    exclusion for health never leaves a request nothing to try: it is sent
    to `local` all the same."""
    resume = asyncio.Event()
    async with FakeUpstream(default=Reply(json=anthropic_message("local"))) as up:
        up.script(BUSY, BUSY, BUSY, held_stream(resume, error=("overloaded_error", "busy")))
        d = await start_daemon(
            NO_PROBES
            + "providers:"
            + provider_yaml("local", up.url, extra="max_concurrent: 1")
            + f"profiles:\n  - {{name: default, providers: [local], {HEALTH}}}\n"
        )
        for _ in range(3):
            assert (await post(d))[0] == 503
        failing = asyncio.create_task(post(d, stream=True))
        await up.wait_for_requests(4, timeout=5)
        queued = asyncio.create_task(post(d))
        await until(lambda: waiting(d.daemon.slots, local=1))
        resume.set()
        assert (await failing)[0] == 503
        status, headers, body = await queued
    assert len(up.requests) == 5
    assert status == 200
    assert headers["x-coderouter-provider"] == "local"
    assert body["content"][0]["text"] == "local"
    # Excluded as its slot came free (before the request was sent), restored by its answer.
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        events = [(r.event, r.fields) for r in await tail(conn, 50)]
    finally:
        await conn.close()
    healing = [(e, f.get("reason"), f.get("via")) for e, f in events if e.startswith("provider.")]
    assert healing == [
        ("provider.excluded", "unhealthy", None),
        ("provider.restored", None, "request"),
    ]
