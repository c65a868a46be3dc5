"""A request whose providers change state while it runs ends as a new request
arriving at that moment would: a provider skipped at run time for a soft
reason waits in reserve like one the plan skipped, and a reserve provider
tried after all is reported by how it failed, not as skipped for its window
(README: How a request is routed, Attempts)."""

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
from coderouterd.routing.plan import SKIP_EXCLUDED_MANUAL, Plan, Route, plan_attempts
from coderouterd.routing.progress import Reply as EngineReply
from coderouterd.routing.slots import Slots
from coderouterd.runtime import Runtime, build_runtime
from coderouterd.translate.estimate import estimate_prompt_tokens
from tests.conftest import provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_excluded_while_waiting_engine import OutOfRotation
from tests.integration.test_excluded_while_waiting_reserve import Summaries

pytestmark = pytest.mark.timeout(30)

BUSY = anthropic_error(503, "overloaded_error", "busy")
EXCLUDE = "backend_health_action: exclude"


def body(text: str = "hi") -> dict[str, Any]:
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}


def call(rid: str, text: str = "hi") -> Call:
    fields = {k: msgspec.Raw(msgspec.json.encode(v)) for k, v in body(text).items()}
    return Call(rid, "anthropic", fields, {}, stream=False, requested_model="m", profile="p")


Build = Callable[[str], Runtime]


@pytest.fixture
async def build(tmp_path: Path) -> AsyncIterator[tuple[Build, OutOfRotation, Slots, Summaries]]:
    rotation, slots, observer, made = OutOfRotation(), Slots(), Summaries(), []

    def runtime(yaml: str) -> Runtime:
        path = tmp_path / "config.yaml"
        path.write_text(yaml)
        loaded = load_config(path)
        slots.configure(loaded.config.providers)
        rt = build_runtime(
            loaded, env={}, observer=observer, clock=SystemClock(), slots=slots,
            rotation=rotation,
        )  # fmt: skip
        made.append(rt)
        return rt

    yield runtime, rotation, slots, observer
    for rt in made:
        for adapter in rt.adapters.values():
            await adapter.close()


def planned(rt: Runtime, rotation: OutOfRotation, c: Call | None = None) -> Plan:
    """The plan a request arriving now gets (as Daemon.unavailable and the
    ingress make it), with the prompt measured as the ingress measures it."""
    c = c or call("plan")
    return plan_attempts(
        rt.config, Route("p"),
        unavailable=dict.fromkeys(rotation.by_hand, SKIP_EXCLUDED_MANUAL),
        excluded=rotation.unhealthy, cooling=rotation.cooled,
        prompt_tokens=estimate_prompt_tokens(c.fields, c.media), windows=rt.context_windows,
    )  # fmt: skip


async def test_a_provider_skipped_at_run_time_for_health_is_lost_when_the_last_one_is_taken_out(
    build: tuple[Build, OutOfRotation, Slots, Summaries],
) -> None:
    """Chain [a, c] under `backend_health_action: exclude`, `c` max_concurrent 1
    and busy. The request is planned with both healthy; `a` is then excluded as
    unhealthy, so at its turn `a` is skipped (soft) because `c` is left. The
    request waits for `c`'s slot; meanwhile the operator runs `ctl exclude c`.
    As for a new request then, `a` excluded (soft) and `c` out by hand (hard)
    leave `a` as the last resort, which answers."""
    runtime, rotation, slots, _ = build
    async with (
        FakeUpstream(default=Reply(json=anthropic_message("a"))) as a,
        FakeUpstream(default=Reply(json=anthropic_message("c"))) as c,
    ):
        rt = runtime(
            "providers:"
            + provider_yaml("a", a.url)
            + provider_yaml("c", c.url, extra="max_concurrent: 1")
            + f"profiles:\n  - {{name: p, providers: [a, c], {EXCLUDE}}}\n"
        )
        plan = planned(rt, rotation)
        assert [p.name for p in plan.attempts] == ["a", "c"]
        gate = slots.kept("c")
        assert gate is not None and gate.take_now()
        rotation.unhealthy.add("a")
        waiting = asyncio.create_task(rt.engine.unary(call("w"), plan))
        await until(lambda: gate.waiting == 1)
        rotation.by_hand.add("c")
        gate.give_back()
        done = await asyncio.gather(waiting, return_exceptions=True)
        new = await asyncio.gather(
            rt.engine.unary(call("n"), planned(rt, rotation)), return_exceptions=True
        )
    assert isinstance(new[0], EngineReply) and new[0].status == 200
    assert new[0].headers["x-coderouter-provider"] == "a"
    assert isinstance(done[0], EngineReply), f"waiting request got {done[0]!r}"
    assert done[0].headers["x-coderouter-provider"] == "a"


async def test_a_reserve_provider_tried_for_its_window_and_failing_gets_400_not_tried(
    build: tuple[Build, OutOfRotation, Slots, Summaries],
) -> None:
    """Chain [a, small]; `small` declares a window smaller than the prompt, so
    the plan skips it (reserve). `a` is then taken out by hand: `small` is drawn
    from the reserve as the last resort and tried; it fails with a 503.

    As for a new request then, the answer is the 503 all-failed error listing
    small's http_503, not a 400 prompt-too-long saying small was not tried (on
    which Claude Code would compact its conversation for nothing)."""
    runtime, rotation, _, _ = build
    text = "word " * 400
    async with (
        FakeUpstream(default=Reply(json=anthropic_message("a"))) as a,
        FakeUpstream(default=BUSY) as small,
    ):
        rt = runtime(
            "providers:"
            + provider_yaml("a", a.url)
            + provider_yaml("small", small.url, extra="capabilities: {max_context_tokens: 50}")
            + "profiles:\n  - {name: p, providers: [a, small]}\n"
        )
        plan = planned(rt, rotation, call("plan", text))
        assert [p.name for p in plan.attempts] == ["a"]
        assert [p.name for p in plan.reserve] == ["small"]
        rotation.by_hand.add("a")
        done = await asyncio.gather(rt.engine.unary(call("w", text), plan), return_exceptions=True)
        new_plan = planned(rt, rotation, call("plan", text))
        assert new_plan.last_resort
        new = await asyncio.gather(
            rt.engine.unary(call("n", text), new_plan), return_exceptions=True
        )
    assert len(small.requests) == 2, "small was tried by both"
    assert isinstance(new[0], NoProviderAvailableError)
    waited = done[0]
    got = waited.status if isinstance(waited, EngineReply) else waited
    assert isinstance(waited, NoProviderAvailableError), f"waiting request got {got!r}: " + (
        waited.body.decode()[:300] if isinstance(waited, EngineReply) else ""
    )
    assert waited.attempts == new[0].attempts
