"""A restarted daemon reads back only what the model each provider is
configured with told of its window: not a refusal or cut by the old model
ending after a reload, nor what the old model told before a `model` changed
while the daemon was down; a row naming no model counts as the configured
model's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from coderouterd.clock import Clock
from coderouterd.routing.windows import FORGET_S
from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.records import AttemptRow, AuditEvent, RequestRow
from coderouterd.state.writer import Writer
from coderouterd.telemetry import events
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error_body, anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.state.support_db import ManualClock
from tests.integration.test_reload_backend_change_windows import (
    TOO_LONG,
    answers,
    ask,
    config,
    learned,
    reload,
)

pytestmark = pytest.mark.timeout(30)

OLD, NEW = "qwen-32k", "qwen-128k"


def refuses(req: Recorded) -> Reply:
    """The old model refuses the long prompt; the new one reads it whole."""
    if (req.json or {}).get("model") == OLD:
        return Reply(status=400, json=anthropic_error_body("invalid_request_error", TOO_LONG))
    return answers("small")


def cuts(req: Recorded) -> Reply:
    """The old model reads 2048 tokens of the long prompt (about 20000); the new one all."""
    if (req.json or {}).get("model") == OLD:
        return Reply(json=anthropic_message("small", input_tokens=2048))
    return answers("small")


async def restarted(
    start_daemon: StartDaemon, d: RunningDaemon, yaml: str, clock: Clock | None = None
) -> RunningDaemon:
    """A daemon started on `yaml` over `d`'s state, once `d` wrote what it learned from."""
    d.daemon.deferred.flush()
    await d.state.writer.flush()
    return await start_daemon(yaml, state_dir=d.state.path.parent, clock=clock)


async def test_an_old_models_refusal_ending_after_a_reload_is_not_read_back_at_a_restart(
    start_daemon: StartDaemon,
) -> None:
    """A long prompt is on its way to the 32k model when `small` is switched
    to a 128k one: its refusal, after the reload, teaches nothing, and a
    daemon restarted on the new config does not read it back."""
    slow_refusal = Reply(
        status=400,
        json=anthropic_error_body("invalid_request_error", TOO_LONG),
        delay_before_headers=1.0,
    )
    async with FakeUpstream() as small, FakeUpstream(default=answers("big")) as big:
        small.script(slow_refusal)
        small.default = answers("small")
        d = await start_daemon(config(small.url, big.url))
        running = asyncio.create_task(ask(d))
        await small.wait_for_requests(1, timeout=5)
        new_config = config(small.url, big.url, NEW)
        await reload(d, new_config)
        assert await running == ("big", "small=context_exceeded")
        d.daemon.deferred.flush()
        assert d.daemon.windows.learned("small") is None
        again = await restarted(start_daemon, d, new_config)
        assert again.daemon.windows.learned("small") is None
        assert await ask(again) == ("small", None)
    assert [r.json["model"] for r in small.requests] == [OLD, NEW]


@pytest.mark.parametrize("backend", [refuses, cuts], ids=["refused", "cut"])
async def test_what_the_old_model_told_is_not_read_back_after_its_model_changed_while_stopped(
    start_daemon: StartDaemon, backend: Callable[[Recorded], Reply]
) -> None:
    async with FakeUpstream() as small, FakeUpstream(default=answers("big")) as big:
        small.responder = backend
        d = await start_daemon(config(small.url, big.url, OLD))
        await ask(d)
        await learned(d)
        # Restarted as it was: the old model's window is read back.
        same = await restarted(start_daemon, d, config(small.url, big.url, OLD))
        assert same.daemon.windows.learned("small") is not None
        # Restarted on the new model: it gets the long prompt.
        moved = await restarted(start_daemon, d, config(small.url, big.url, NEW))
        assert moved.daemon.windows.learned("small") is None
        assert await ask(moved) == ("small", None)
        assert [r.json["model"] for r in small.requests][-1] == NEW


async def test_a_long_hold_of_the_old_model_is_not_read_back_after_its_model_changed_while_stopped(
    start_daemon: StartDaemon,
) -> None:
    """The old model cut the prompt again as soon as it got its chance back:
    held 20 minutes, audited. Restarted 15 minutes later, the cuts are too
    old to read back; only the hold is, and only for the model it held."""
    clock = ManualClock()
    async with FakeUpstream() as small, FakeUpstream(default=answers("big")) as big:
        small.responder = cuts
        d = await start_daemon(config(small.url, big.url, OLD), clock=clock)
        await ask(d)
        await learned(d)
        clock.advance(FORGET_S)
        await ask(d)  # its chance back: cut again at once
        await learned(d)
        held = d.daemon.windows.learned("small")
        assert held is not None and held[0].hold_s == 2 * FORGET_S
        clock.advance(FORGET_S * 1.5)
        same = await restarted(start_daemon, d, config(small.url, big.url, OLD), clock=clock)
        assert same.daemon.windows.learned("small") is not None
        moved = await restarted(start_daemon, d, config(small.url, big.url, NEW), clock=clock)
        assert moved.daemon.windows.learned("small") is None
        assert await ask(moved) == ("small", None)


NOW = 1_750_000_000.0


def refusal(rid: str, provider: str, model: str | None, ago: float, window: int) -> RequestRow:
    """`provider` (sent to `model`) refused a prompt of 50000 estimated, its
    error naming `window`; big answered."""
    return RequestRow(
        id=rid, ts=NOW - ago, dialect="anthropic", profile="default", requested_model="m",
        provider="big", status=200, stream=False, ttfb_ms=1.0, total_ms=80.0,
        prompt_estimate=50_000,
        attempts=(
            AttemptRow(seq=0, provider=provider, outcome="too_long", reason="context_exceeded",
                       status=400, prompt_tokens=2 * window, context_window=window, model=model),
            AttemptRow(seq=1, provider="big", outcome="ok", status=200, model="big-model"),
        ),
    )  # fmt: skip


def cut(rid: str, provider: str, model: str | None, ago: float) -> RequestRow:
    """`provider`'s `model`, tried after a busy `big`, read 2048 tokens of 20000."""
    return RequestRow(
        id=rid, ts=NOW - ago, dialect="anthropic", profile="default", requested_model="m",
        provider=provider, status=200, stream=False, ttfb_ms=1.0, total_ms=80.0,
        prompt_estimate=20_000, input_tokens=2048, output_tokens=5,
        attempts=(
            AttemptRow(seq=0, provider="big", outcome="failed", reason="http_529", status=529,
                       model="big-model"),
            AttemptRow(seq=1, provider=provider, outcome="ok", status=200, model=model),
        ),
    )  # fmt: skip


def hold(provider: str, **model: str) -> AuditEvent:
    fields = {"provider": provider, "limit": 9000, "hold_s": 4 * FORGET_S, "window": 8192}
    return AuditEvent(ts=NOW - 100, event=events.PROVIDER_WINDOW_HELD, fields=fields | model)


async def test_at_start_only_what_each_providers_configured_model_told_is_read_back(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    conn = await open_db(db_path(state_dir))
    try:
        await migrate(conn, discover(), now=1.0)
        writer = Writer(conn, clock=ManualClock(NOW))
        for record in (
            refusal("unnamed", "a", None, 300, 8192),  # from before attempts named it
            refusal("own", "b", "b-model", 300, 32_768),
            refusal("other", "b", "b-old", 100, 8192),  # later, another model's
            refusal("old", "c", "c-old", 100, 8192),
            cut("cut-old", "d", "d-old", 100),
            cut("cut-own", "e", "e-model", 100),
            hold("f", model="f-old"),
            hold("g"),  # from before holds named it
            hold("h", model="h-model"),
        ):
            assert writer.submit(record)
        await writer.close()
    finally:
        await conn.close()

    async with FakeUpstream(default=answers("any")) as fake:
        names = "abcdefgh"
        yaml = chain_yaml(*(provider_yaml(n, fake.url) for n in [*names, "big"]))
        d = await start_daemon(yaml, clock=ManualClock(NOW), state_dir=state_dir)
    windows = d.daemon.windows
    learned = {n: w[0] for n in names if (w := windows.learned(n)) is not None}
    assert sorted(learned) == ["a", "b", "e", "g", "h"]
    assert learned["a"].window == 8192
    assert learned["b"].window == 32_768  # not hidden by the old model's later refusal
    assert learned["e"].cut and learned["e"].limit == 2048
    assert learned["g"].hold_s == learned["h"].hold_s == 4 * FORGET_S
