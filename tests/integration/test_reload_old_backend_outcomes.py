"""A reload that points a provider at another model or server: what its old
backend did, in requests that finish after the reload or whose summaries
were still queued then, judges neither the drift nor the pace of the new one."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest

from coderouterd.status import status_of
from coderouterd.telemetry import deferred as deferred_module
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

pytestmark = pytest.mark.timeout(30)

DRIFT = "  - {name: main, providers: [local, cloud], drift_action: warn}\n"
PACE = "  - {name: main, providers: [local, cloud], adaptive: true}\n"
ASK: Any = {"max_tokens": 200, "messages": [{"role": "user", "content": "go on"}]}


def config(local_url: str, cloud_url: str, *, model: str, profiles: str) -> str:
    local = provider_yaml("local", local_url).replace("model: local-model", f"model: {model}")
    return chain_yaml(
        local, provider_yaml("cloud", cloud_url), profiles=profiles, top="drift: {window: 10}\n"
    )


def empty(delay_s: float = 0.0) -> Reply:
    message = anthropic_message("")
    message["content"] = []
    message["usage"]["output_tokens"] = 0
    return Reply(json=message, delay_before_headers=delay_s)


def stream(delay_s: float) -> Reply:
    # 100 output tokens over seven gaps of `delay_s` after the first content.
    events = anthropic_text_stream(["a", "b", "c", "d"], output_tokens=100)
    return Reply(events=events, delay_between_events=delay_s)


async def ask(d: RunningDaemon, *, stream: bool = False) -> str:
    """One request, read to its end; the provider that answered."""
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(model="m", stream=stream, **ASK)
        if stream:
            async for _ in await raw.parse():
                pass
    return raw.headers["x-coderouter-provider"]


async def reload(d: RunningDaemon, yaml: str) -> None:
    d.config_path.write_text(yaml)
    reply = await d.daemon.reload()
    assert reply.ok, reply.problems


def drift_of(d: RunningDaemon) -> tuple[str, int]:
    """`ctl status`'s drift of `local` (which hands the queued summaries over)."""
    drift = status_of(d.daemon).providers[0].drift
    assert drift is not None
    return drift.severity, drift.outcomes


def pace_answers(d: RunningDaemon) -> int:
    pace = status_of(d.daemon).providers[0].pace
    assert pace is not None
    return pace.answers


async def test_empty_answers_of_the_old_model_finishing_after_a_reload_do_not_judge_the_new_one(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = empty(delay_s=0.6)
    url = fake_upstream.url
    d = await start_daemon(config(url, url, model="broken", profiles=DRIFT))
    running = [asyncio.create_task(ask(d)) for _ in range(6)]
    await fake_upstream.wait_for_requests(6, timeout=5)
    assert {r.json["model"] for r in fake_upstream.requests} == {"broken"}
    await reload(d, config(url, url, model="fixed", profiles=DRIFT))
    assert await asyncio.gather(*running) == ["local"] * 6
    assert drift_of(d) == ("none", 0)
    assert d.daemon.drift.flagged == {}


async def test_failures_of_the_old_model_ending_after_a_reload_do_not_judge_the_new_one(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    def answer(req: Recorded) -> Reply:
        if (req.json or {}).get("model") == "cloud-model":
            return Reply(json=anthropic_message("from the cloud", output_tokens=20))
        return Reply(status=500, json={"error": "out of memory"}, delay_before_headers=0.6)

    fake_upstream.responder = answer
    url = fake_upstream.url
    d = await start_daemon(config(url, url, model="broken", profiles=DRIFT))
    running = [asyncio.create_task(ask(d)) for _ in range(6)]
    await fake_upstream.wait_for_requests(6, timeout=5)
    await reload(d, config(url, url, model="fixed", profiles=DRIFT))
    # Each fell through to cloud once the old model failed.
    assert await asyncio.gather(*running) == ["cloud"] * 6
    assert drift_of(d) == ("none", 0)


async def test_answers_queued_when_a_reload_moves_the_provider_to_another_server_are_the_old_ones(
    start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No hand-over on a timer: the summaries are still queued at the reload.
    monkeypatch.setattr(deferred_module, "INTERVAL_S", 3600.0)
    async with (
        FakeUpstream(default=empty()) as old,
        FakeUpstream(default=empty()) as new,
        FakeUpstream(default=Reply(json=anthropic_message("ok"))) as cloud,
    ):
        d = await start_daemon(config(old.url, cloud.url, model="m", profiles=DRIFT))
        for _ in range(6):
            assert await ask(d) == "local"
        # Same model, another server: an attempt does not name its server.
        await reload(d, config(new.url, cloud.url, model="m", profiles=DRIFT))
        assert drift_of(d) == ("none", 0)


async def test_streams_of_the_old_model_ending_after_a_reload_are_not_the_new_models_speed(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream(default=stream(0.1)) as local,
        FakeUpstream(default=stream(0.1)) as cloud,
    ):
        d = await start_daemon(config(local.url, cloud.url, model="qwen-7b", profiles=PACE))
        running = [asyncio.create_task(ask(d, stream=True)) for _ in range(5)]
        await local.wait_for_requests(5, timeout=5)
        await reload(d, config(local.url, cloud.url, model="qwen-32b", profiles=PACE))
        assert await asyncio.gather(*running) == ["local"] * 5
        assert pace_answers(d) == 0
        # The new model's own answers count.
        assert await ask(d, stream=True) == "local"
        assert local.requests[-1].json["model"] == "qwen-32b"
        assert pace_answers(d) == 1


async def test_streams_queued_when_a_reload_moves_the_provider_to_another_server_are_the_old_ones(
    start_daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deferred_module, "INTERVAL_S", 3600.0)
    async with (
        FakeUpstream(default=stream(0.01)) as old,
        FakeUpstream(default=stream(0.01)) as new,
        FakeUpstream(default=stream(0.01)) as cloud,
    ):
        d = await start_daemon(config(old.url, cloud.url, model="m", profiles=PACE))
        for _ in range(3):
            assert await ask(d, stream=True) == "local"
        await reload(d, config(new.url, cloud.url, model="m", profiles=PACE))
        assert pace_answers(d) == 0
