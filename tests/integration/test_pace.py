"""Pace through a real daemon: a backend whose streams slow down (a model
spilled to the CPU) is tried later by an `adaptive` profile, shown, and
still known to be slow after a restart.

Speeds here are set on the daemon's clock, not by sleeping: on a loaded
machine a stream paced by real sleeps can take twice as long as asked, which
is the very slowdown pace looks for."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
from structlog.testing import capture_logs

from coderouterd.ctl.render import render_status
from coderouterd.healing.pace import DEMOTE_S, RECENT, USUAL_MIN
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

PROFILES = "  - {name: main, providers: [local, cloud], adaptive: true}\n"
# Seconds, on the daemon's clock, from an answer's first content to its end:
# 100 tokens at 10 a second, and at 1 a second. Real time adds well under a
# second to either.
USUAL_S = 10.0
SLOW_S = 100.0
# message_start, content_block_start, the first text delta.
_FIRST_CONTENT = 3


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


class MovedClock:
    """The system clock, moved forward by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def wall(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def decoded(
    d: RunningDaemon, clock: MovedClock, fake: FakeUpstream, decode_s: float, n: int = 1
) -> list[str]:
    """`n` streamed requests at once, each answered by `fake` in `decode_s`
    on the daemon's clock from its first content to its end; the providers
    that answered. The answers pause after their first content until all `n`
    clients have read it; then the clock moves on and they end."""
    resume = asyncio.Event()
    fake.default = Reply(
        events=anthropic_text_stream(["a", "b", "c", "d"], output_tokens=100),
        pause_after_frames=_FIRST_CONTENT,
        resume=resume,
    )
    waiting = n
    body = {"model": "m", "max_tokens": 200, "stream": True,
            "messages": [{"role": "user", "content": "go on"}]}  # fmt: skip

    async def one(http: aiohttp.ClientSession) -> str:
        nonlocal waiting
        async with http.post(f"{d.url}/v1/messages", json=body, headers={"x-api-key": "k"}) as resp:
            counted = False
            async for line in resp.content:
                if not counted and b"content_block_delta" in line:
                    counted = True
                    waiting -= 1
                    if waiting == 0:
                        clock.advance(decode_s)
                        resume.set()
            return resp.headers["x-coderouter-provider"]

    async with aiohttp.ClientSession() as http, asyncio.timeout(30):
        return list(await asyncio.gather(*(one(http) for _ in range(n))))


async def test_a_backend_decoding_far_slower_than_usual_is_tried_later_and_remembered(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    clock = MovedClock()
    async with FakeUpstream() as local, FakeUpstream(default=stream(0)) as cloud:
        config = chain_yaml(
            provider_yaml("local", local.url), provider_yaml("cloud", cloud.url), profiles=PROFILES
        )
        state_dir = tmp_path / "state"
        d = await start_daemon(config, state_dir=state_dir, clock=clock)
        with capture_logs() as logs:
            served = await decoded(d, clock, local, USUAL_S, USUAL_MIN)
            assert served == ["local"] * USUAL_MIN
            # The model no longer fits: the same answers, ten times slower.
            served = await decoded(d, clock, local, SLOW_S, RECENT // 2 + 1)
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
            again = await start_daemon(config, state_dir=state_dir, clock=clock)
        assert again.daemon.pace.demoted() == {"local"}
        assert [e["restored"] for e in logs if e["event"] == "provider.slow"] == [True]
        assert await ask(again) == "cloud"


async def test_a_slow_backend_back_at_speed_is_tried_first_after_one_answer_at_its_usual_speed(
    start_daemon: StartDaemon,
) -> None:
    clock = MovedClock()
    async with FakeUpstream() as local, FakeUpstream(default=stream(0)) as cloud:
        config = chain_yaml(
            provider_yaml("local", local.url), provider_yaml("cloud", cloud.url), profiles=PROFILES
        )
        d = await start_daemon(config, clock=clock)
        assert await decoded(d, clock, local, USUAL_S, USUAL_MIN) == ["local"] * USUAL_MIN
        assert await decoded(d, clock, local, SLOW_S, RECENT) == ["local"] * RECENT
        await until(lambda: d.daemon.pace.demoted() == {"local"})
        # Fixed meanwhile. Ten minutes on, one request finds it back at speed;
        # the median of its last five is still slow, but that answer was not.
        clock.advance(DEMOTE_S + 1)
        assert d.daemon.pace.demoted() == frozenset()
        with capture_logs() as logs:
            assert await decoded(d, clock, local, USUAL_S) == ["local"]
            pace = status_of(d.daemon).providers[0].pace  # takes that answer's summary
            assert pace is not None and pace.slow and pace.demoted_for_s is None
            assert d.daemon.pace.demoted() == frozenset()
            # So it is tried first, and answers at its usual speed end it.
            for _ in range(RECENT // 2):
                assert await decoded(d, clock, local, USUAL_S) == ["local"]
            status_of(d.daemon)
        assert [e["event"] for e in logs if e["event"].startswith("provider.")] == [
            "provider.slow_cleared"
        ]


async def test_a_restart_counts_the_demotion_from_when_the_last_slow_answer_ended(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    clock = MovedClock()
    state_dir = tmp_path / "state"
    async with FakeUpstream() as local, FakeUpstream(default=stream(0)) as cloud:
        config = chain_yaml(
            provider_yaml("local", local.url), provider_yaml("cloud", cloud.url), profiles=PROFILES
        )
        d = await start_daemon(config, clock=clock, state_dir=state_dir)
        assert await decoded(d, clock, local, USUAL_S, USUAL_MIN) == ["local"] * USUAL_MIN
        # Long answers decoded at a crawl: 100 tokens over 200 s each.
        for _ in range(RECENT // 2 + 1):
            assert await decoded(d, clock, local, 200.0) == ["local"]
            status_of(d.daemon)
        pace = status_of(d.daemon).providers[0].pace
        assert pace is not None and pace.demoted_for_s is not None
        assert pace.demoted_for_s > DEMOTE_S - 10
        await d.state.writer.flush()
        again = await start_daemon(config, clock=clock, state_dir=state_dir)
        restored = status_of(again.daemon).providers[0].pace
        assert restored is not None and restored.demoted_for_s is not None
        # Not 200 s less, as if the answer had ended when it was asked for.
        assert restored.demoted_for_s > DEMOTE_S - 10
        assert restored.demoted_for_s <= pace.demoted_for_s
