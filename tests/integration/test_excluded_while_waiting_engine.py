"""The engine asks the plan's question again as each attempt starts: a
provider taken out of rotation while a request waited for its slot is
skipped for the reason the plan gives, with the slot given back; a soft
reason never leaves the request nothing to try. Built as the daemon builds
it (build_runtime), with the providers out of rotation set by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from coderouterd.clock import SystemClock
from coderouterd.config import load_config
from coderouterd.errors import NoProviderAvailableError
from coderouterd.routing.call import Call
from coderouterd.routing.plan import SKIP_EXCLUDED_MANUAL, Route, plan_attempts
from coderouterd.routing.progress import Reply as EngineReply
from coderouterd.routing.records import BaseObserver
from coderouterd.routing.slots import Slots
from coderouterd.runtime import Runtime, build_runtime
from tests.conftest import provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}


class OutOfRotation:
    """The providers out of rotation, as the self-healing book tells them."""

    def __init__(self) -> None:
        self.by_hand: set[str] = set()
        self.unhealthy: set[str] = set()
        self.cooled: set[str] = set()

    def manual(self) -> frozenset[str]:
        return frozenset(self.by_hand)

    def excluded(self) -> frozenset[str]:
        return frozenset(self.unhealthy)

    def cooling(self) -> frozenset[str]:
        return frozenset(self.cooled)


def call(rid: str) -> Call:
    fields = {k: msgspec.Raw(msgspec.json.encode(v)) for k, v in BODY.items()}
    return Call(rid, "anthropic", fields, {}, stream=False, requested_model="m", profile="p")


Build = Callable[[str], Runtime]


@pytest.fixture
async def build(tmp_path: Path) -> AsyncIterator[tuple[Build, OutOfRotation, Slots]]:
    rotation, slots, built = OutOfRotation(), Slots(), []

    def runtime(yaml: str) -> Runtime:
        path = tmp_path / "config.yaml"
        path.write_text(yaml)
        loaded = load_config(path)
        slots.configure(loaded.config.providers)
        made = build_runtime(
            loaded, env={}, observer=BaseObserver(), clock=SystemClock(), slots=slots,
            rotation=rotation,
        )  # fmt: skip
        built.append(made)
        return made

    yield runtime, rotation, slots
    for made in built:
        for adapter in made.adapters.values():
            await adapter.close()


async def test_the_engine_skips_a_provider_taken_out_by_hand_while_a_request_waited(
    build: tuple[Build, OutOfRotation, Slots],
) -> None:
    """`local` (max_concurrent: 1) answers A slowly; B waits for the slot; the
    operator takes `local` out. B is not sent to it, and fails as a request
    planned after the exclusion does: `excluded_manual`."""
    runtime, rotation, slots = build
    async with FakeUpstream(default=Reply(json=anthropic_message("b"))) as up:
        up.script(Reply(json=anthropic_message("a"), delay_before_headers=0.3))
        rt = runtime(
            "providers:"
            + provider_yaml("local", up.url, extra="max_concurrent: 1")
            + "profiles:\n  - {name: p, providers: [local]}\n"
        )
        plan = plan_attempts(rt.config, Route("p"))
        first = asyncio.create_task(rt.engine.unary(call("a"), plan))
        await up.wait_for_requests(1, timeout=5)
        second = asyncio.create_task(rt.engine.unary(call("b"), plan))
        await until(lambda: (gate := slots.gate("local")) is not None and gate.waiting == 1)
        rotation.by_hand.add("local")
        done = await asyncio.gather(first, second, return_exceptions=True)
        later = plan_attempts(rt.config, Route("p"), unavailable={"local": SKIP_EXCLUDED_MANUAL})
        new = await asyncio.gather(rt.engine.unary(call("c"), later), return_exceptions=True)
    assert isinstance(done[0], EngineReply)
    assert done[0].status == 200
    assert len(up.requests) == 1
    waited = done[1]
    assert isinstance(waited, NoProviderAvailableError)
    assert isinstance(new[0], NoProviderAvailableError)
    assert waited.status == new[0].status == 503
    assert waited.attempts == new[0].attempts
    assert [(a.provider, a.reason) for a in waited.attempts] == [("local", SKIP_EXCLUDED_MANUAL)]
    # Its slot was given back: the next request takes it at once.
    gate = slots.gate("local")
    assert gate is not None and gate.waiting == 0


async def test_a_provider_excluded_as_unhealthy_is_tried_when_a_last_resort_plan_holds_it(
    build: tuple[Build, OutOfRotation, Slots],
) -> None:
    """Chain [small, local] under `backend_health_action: exclude`: `small`
    was skipped for its window and `local` as unhealthy, so the plan tries
    both, nothing else being left. `small` failing, `local` is tried all the
    same though still excluded: an exclusion for health never leaves a
    request nothing to try, at run time as in the plan."""
    runtime, rotation, _ = build
    async with (
        FakeUpstream(default=anthropic_error(503, "overloaded_error", "busy")) as small,
        FakeUpstream(default=Reply(json=anthropic_message("local"))) as local,
    ):
        rt = runtime(
            "providers:"
            + provider_yaml("small", small.url)
            + provider_yaml("local", local.url)
            + "profiles:\n  - {name: p, providers: [small, local],"
            " backend_health_action: exclude}\n"
        )
        rotation.unhealthy.add("local")
        plan = plan_attempts(
            rt.config, Route("p"), excluded={"local"}, prompt_tokens=100, windows={"small": 50}
        )
        assert [p.name for p in plan.attempts] == ["small", "local"]
        assert plan.last_resort
        reply = await rt.engine.unary(call("a"), plan)
    assert (len(small.requests), len(local.requests)) == (1, 1)
    assert reply.status == 200
    assert reply.headers["x-coderouter-provider"] == "local"


async def test_a_provider_excluded_as_unhealthy_since_the_plan_is_skipped_for_the_next(
    build: tuple[Build, OutOfRotation, Slots],
) -> None:
    """Chain [local, cloud] under `backend_health_action: exclude`, planned
    before `local` was excluded as unhealthy: `local` is skipped as the plan
    would skip it (`excluded`), `cloud` answers."""
    runtime, rotation, _ = build
    async with (
        FakeUpstream(default=Reply(json=anthropic_message("local"))) as local,
        FakeUpstream(default=Reply(json=anthropic_message("cloud"))) as cloud,
    ):
        rt = runtime(
            "providers:"
            + provider_yaml("local", local.url)
            + provider_yaml("cloud", cloud.url)
            + "profiles:\n  - {name: p, providers: [local, cloud],"
            " backend_health_action: exclude}\n"
        )
        plan = plan_attempts(rt.config, Route("p"))
        rotation.unhealthy.add("local")
        reply = await rt.engine.unary(call("a"), plan)
    assert (len(local.requests), len(cloud.requests)) == (0, 1)
    assert reply.headers["x-coderouter-provider"] == "cloud"
    assert reply.headers["x-coderouter-fallback-reason"] == "local=excluded"
