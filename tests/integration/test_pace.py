"""Pace through a real daemon: a backend whose streams slow down (a model
spilled to the CPU) is tried later by an `adaptive` profile, shown, and
still known to be slow after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anthropic
from structlog.testing import capture_logs

from coderouterd.ctl.render import render_status
from coderouterd.healing.pace import RECENT, USUAL_MIN
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

PROFILES = "  - {name: main, providers: [local, cloud], adaptive: true}\n"


def stream(delay_s: float) -> Reply:
    # 100 output tokens over seven gaps of `delay_s` after the first content.
    events = anthropic_text_stream(["a", "b", "c", "d"], output_tokens=100)
    return Reply(events=events, delay_between_events=delay_s)


async def ask(d: RunningDaemon) -> str:
    """One streamed request, read to its end; the provider that answered."""
    body: Any = {"max_tokens": 200, "messages": [{"role": "user", "content": "go on"}]}
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(model="m", stream=True, **body)
        async for _ in await raw.parse():
            pass
    return raw.headers["x-coderouter-provider"]


async def test_a_backend_decoding_far_slower_than_usual_is_tried_later_and_remembered(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    async with (
        FakeUpstream(default=stream(0.015)) as local,
        FakeUpstream(default=stream(0.015)) as cloud,
    ):
        config = chain_yaml(
            provider_yaml("local", local.url), provider_yaml("cloud", cloud.url), profiles=PROFILES
        )
        state_dir = tmp_path / "state"
        d = await start_daemon(config, state_dir=state_dir)
        with capture_logs() as logs:
            served = await asyncio.gather(*(ask(d) for _ in range(USUAL_MIN)))
            assert served == ["local"] * USUAL_MIN
            # The model no longer fits: the same answers, five times slower.
            local.default = stream(0.08)
            served = await asyncio.gather(*(ask(d) for _ in range(RECENT // 2 + 1)))
            assert served == ["local"] * (RECENT // 2 + 1)
            await until(lambda: d.daemon.pace.demoted() == {"local"})
            assert await ask(d) == "cloud"
        [slow] = [e for e in logs if e["event"] == "provider.slow"]
        assert slow["provider"] == "local"
        assert slow["usual_tokens_per_s"] > 1.5 * slow["recent_tokens_per_s"]
        status = status_of(d.daemon)
        pace = status.providers[0].pace
        assert pace is not None and pace.slow and pace.demoted_for_s is not None
        assert "slow (" in render_status(status) and "tried later for" in render_status(status)

        await d.state.writer.flush()
        with capture_logs() as logs:
            again = await start_daemon(config, state_dir=state_dir)
        assert again.daemon.pace.demoted() == {"local"}
        assert [e["restored"] for e in logs if e["event"] == "provider.slow"] == [True]
        assert await ask(again) == "cloud"
