"""The providers a plan skipped for soft reasons (excluded as unhealthy,
cooling down, a window smaller than the prompt) are kept in reserve: when
the request's other providers are all skipped at run time for a hard reason
(taken out by hand, or their budget spent), the reserve is asked about
again and the request gets what a new one would (README, "How a request is
routed", step 3: soft reasons never leave a request nothing to try)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest

from coderouterd.clock import SystemClock
from coderouterd.config import load_config
from coderouterd.errors import NoProviderAvailableError
from coderouterd.routing.plan import SKIP_EXCLUDED_MANUAL, Plan, Route, plan_attempts
from coderouterd.routing.progress import Reply as EngineReply
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.runtime import Runtime, build_runtime
from tests.conftest import StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_error_body, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_excluded_while_waiting import (
    NO_PROBES,
    OUT_OF_MEMORY,
    held_stream,
    post,
    waiting,
)
from tests.integration.test_excluded_while_waiting_engine import OutOfRotation, call

pytestmark = pytest.mark.timeout(30)

BUSY = anthropic_error(503, "overloaded_error", "busy")
SKIP = "memory_pressure_action: skip"
EXCLUDE = "backend_health_action: exclude"


async def test_a_waiting_request_whose_provider_is_taken_out_by_hand_goes_to_one_cooling_down(
    start_daemon: StartDaemon,
) -> None:
    """Chain [local (max_concurrent 1), cloud] under `memory_pressure_action:
    skip`, `cloud` cooling down after running out of memory. A request waits
    for `local`'s slot; the operator runs `ctl exclude local`. A new request
    goes to `cloud`, nothing else being left; so does the waiting one, with
    the same attempts reported."""
    resume = asyncio.Event()
    oom = Reply(status=500, json=anthropic_error_body("api_error", OUT_OF_MEMORY))
    async with (
        FakeUpstream(default=Reply(json=anthropic_message("local"))) as local,
        FakeUpstream(default=Reply(json=anthropic_message("cloud"))) as cloud,
    ):
        cloud.script(oom)
        local.script(held_stream(resume))
        d = await start_daemon(
            NO_PROBES
            + "providers:"
            + provider_yaml("local", local.url, extra="max_concurrent: 1")
            + provider_yaml("cloud", cloud.url)
            + f"profiles:\n  - {{name: default, providers: [local, cloud], {SKIP}}}\n"
        )
        assert (await post(d, model="cloud"))[0] >= 500
        assert d.daemon.healing.book.cooling() == {"cloud"}
        held = asyncio.create_task(post(d, stream=True, model="local"))
        await local.wait_for_requests(1, timeout=5)
        queued = asyncio.create_task(post(d))
        await until(lambda: waiting(d.daemon.slots, local=1))
        await d.daemon.provider_action("exclude", "local", None)
        resume.set()
        assert (await held)[0] == 200
        status, headers, body = await queued
        new_status, new_headers, _ = await post(d)
    assert len(local.requests) == 1, "the excluded provider was sent the queued request"
    assert (status, new_status) == (200, 200), body
    assert headers["x-coderouter-provider"] == new_headers["x-coderouter-provider"] == "cloud"
    assert body["content"][0]["text"] == "cloud"
    for header in ("x-coderouter-fallback-path", "x-coderouter-fallback-reason"):
        assert headers[header] == new_headers[header]
    assert headers["x-coderouter-fallback-reason"] == "local=excluded_manual"


class Summaries(BaseObserver):
    def __init__(self) -> None:
        self.summaries: list[RequestSummary] = []

    def request_finished(self, summary: RequestSummary) -> None:
        self.summaries.append(summary)


Build = Callable[[str], Runtime]


@pytest.fixture
async def built(tmp_path: Path) -> AsyncIterator[tuple[Build, OutOfRotation, Summaries]]:
    rotation, observer, made = OutOfRotation(), Summaries(), []

    def runtime(yaml: str) -> Runtime:
        path = tmp_path / "config.yaml"
        path.write_text(yaml)
        rt = build_runtime(
            load_config(path), env={}, observer=observer, clock=SystemClock(),
            rotation=rotation,
        )  # fmt: skip
        made.append(rt)
        return rt

    yield runtime, rotation, observer
    for rt in made:
        for adapter in rt.adapters.values():
            await adapter.close()


def planned(rt: Runtime, rotation: OutOfRotation, windows: Mapping[str, int] | None = None) -> Plan:
    """The plan a request made now gets (`ctl exclude` reaches it as
    `unavailable`), of a prompt of 100 tokens against `windows`."""
    return plan_attempts(
        rt.config, Route("p"),
        unavailable=dict.fromkeys(rotation.by_hand, SKIP_EXCLUDED_MANUAL),
        excluded=rotation.unhealthy, cooling=rotation.cooled,
        prompt_tokens=100, windows=windows,
    )  # fmt: skip


def chain(*names: str, profile: str, **urls: str) -> str:
    return (
        "providers:"
        + "".join(provider_yaml(n, urls[n]) for n in names)
        + f"profiles:\n  - {{name: p, providers: [{', '.join(names)}], {profile}}}\n"
    )


async def test_a_provider_in_reserve_that_fails_is_reported_once_as_a_new_request_reports_it(
    built: tuple[Build, OutOfRotation, Summaries],
) -> None:
    """Planned with `cloud` cooling down, the request finds `local` taken out
    by hand: `cloud` is tried, fails, and the all-failed error lists the
    attempts a new request's lists, `cloud` once, as tried, with its model."""
    runtime, rotation, observer = built
    async with FakeUpstream(default=BUSY) as local, FakeUpstream(default=BUSY) as cloud:
        rt = runtime(chain("local", "cloud", profile=SKIP, local=local.url, cloud=cloud.url))
        rotation.cooled.add("cloud")
        plan = planned(rt, rotation)
        assert [p.name for p in plan.attempts] == ["local"]
        rotation.by_hand.add("local")
        done = await asyncio.gather(rt.engine.unary(call("a"), plan), return_exceptions=True)
        new = await asyncio.gather(
            rt.engine.unary(call("b"), planned(rt, rotation)), return_exceptions=True
        )
    assert (len(local.requests), len(cloud.requests)) == (0, 2)
    waited = done[0]
    assert isinstance(waited, NoProviderAvailableError)
    assert isinstance(new[0], NoProviderAvailableError)
    assert waited.attempts == new[0].attempts
    assert [(a.provider, a.reason, a.attempted) for a in waited.attempts] == [
        ("local", SKIP_EXCLUDED_MANUAL, False),
        ("cloud", "http_503", True),
    ]
    logged = [
        [(r.provider, r.outcome, r.reason, r.model) for r in s.attempts] for s in observer.summaries
    ]
    assert (
        logged[0]
        == logged[1]
        == [
            ("local", "skipped", SKIP_EXCLUDED_MANUAL, None),
            ("cloud", "failed", "http_503", "cloud-model"),
        ]
    )


async def test_a_provider_in_reserve_taken_out_by_hand_since_the_plan_stays_out(
    built: tuple[Build, OutOfRotation, Summaries],
) -> None:
    """Planned with `cloud` cooling down; the operator then takes out both
    `local` and `cloud`. A hand's exclusion is no soft reason: neither is
    tried, and each is reported once, by the reason a new request meets."""
    runtime, rotation, _ = built
    async with FakeUpstream(default=BUSY) as local, FakeUpstream(default=BUSY) as cloud:
        rt = runtime(chain("local", "cloud", profile=SKIP, local=local.url, cloud=cloud.url))
        rotation.cooled.add("cloud")
        plan = planned(rt, rotation)
        rotation.by_hand |= {"local", "cloud"}
        done = await asyncio.gather(rt.engine.unary(call("a"), plan), return_exceptions=True)
        new = await asyncio.gather(
            rt.engine.unary(call("b"), planned(rt, rotation)), return_exceptions=True
        )
    assert (len(local.requests), len(cloud.requests)) == (0, 0)
    waited = done[0]
    assert isinstance(waited, NoProviderAvailableError)
    assert isinstance(new[0], NoProviderAvailableError)
    assert waited.attempts == new[0].attempts
    assert [(a.provider, a.reason) for a in waited.attempts] == [
        ("local", SKIP_EXCLUDED_MANUAL),
        ("cloud", SKIP_EXCLUDED_MANUAL),
    ]


async def test_a_provider_in_reserve_nothing_skips_any_longer_is_tried_before_a_soft_skip(
    built: tuple[Build, OutOfRotation, Summaries],
) -> None:
    """Chain [a, b, c] under `exclude` and `skip`, planned with `c` cooling
    down. Then `a` is excluded as unhealthy, `b` taken out by hand, and `c`
    cools off: as for a new request, `a` is skipped for `c`, which nothing
    skips, and `c` answers."""
    runtime, rotation, _ = built
    async with (
        FakeUpstream(default=Reply(json=anthropic_message("a"))) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
        FakeUpstream(default=Reply(json=anthropic_message("c"))) as c,
    ):
        profile = f"{EXCLUDE}, {SKIP}"
        rt = runtime(chain("a", "b", "c", profile=profile, a=a.url, b=b.url, c=c.url))
        rotation.cooled.add("c")
        plan = planned(rt, rotation)
        assert [p.name for p in plan.attempts] == ["a", "b"]
        rotation.unhealthy.add("a")
        rotation.by_hand.add("b")
        rotation.cooled.clear()
        reply = await rt.engine.unary(call("x"), plan)
        new = await rt.engine.unary(call("y"), planned(rt, rotation))
    assert (len(a.requests), len(b.requests), len(c.requests)) == (0, 0, 2)
    assert isinstance(reply, EngineReply)
    assert reply.headers["x-coderouter-provider"] == "c"
    assert reply.headers == new.headers
    assert reply.headers["x-coderouter-fallback-reason"] == "a=excluded, b=excluded_manual"


async def test_a_provider_in_reserve_for_its_window_is_tried_after_one_excluded_since(
    built: tuple[Build, OutOfRotation, Summaries],
) -> None:
    """Chain [a, small] under `exclude`: `small` was skipped for a window
    smaller than the prompt. Then `a` is excluded as unhealthy: its window
    still too small, `small` is no provider nothing skips, so as for a new
    request both are tried, `a` first; `a` fails and `small` answers."""
    runtime, rotation, _ = built
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("small"))) as small,
    ):
        rt = runtime(chain("a", "small", profile=EXCLUDE, a=a.url, small=small.url))
        windows = {"small": 50}
        plan = planned(rt, rotation, windows)
        assert [p.name for p in plan.attempts] == ["a"]
        rotation.unhealthy.add("a")
        reply = await rt.engine.unary(call("x"), plan)
        new_plan = planned(rt, rotation, windows)
        assert [p.name for p in new_plan.attempts] == ["a", "small"]
        new = await rt.engine.unary(call("y"), new_plan)
    assert (len(a.requests), len(small.requests)) == (2, 2)
    assert reply.headers["x-coderouter-provider"] == "small"
    assert reply.headers == new.headers
