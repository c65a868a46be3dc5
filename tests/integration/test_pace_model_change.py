"""A reload that points a provider at another model or server forgets what
the old backend did: its speeds (pace) and its outcomes (drift)."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
from structlog.testing import capture_logs

from coderouterd.healing.pace import RECENT, USUAL_MIN
from coderouterd.status import status_of
from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.test_pace import (
    PROFILES,
    SLOW_S,
    USUAL_S,
    MovedClock,
    ask,
    decoded,
    stream,
)


def config(local_url: str, cloud_url: str, *, model: str, profiles: str) -> str:
    local = provider_yaml("local", local_url).replace("model: local-model", f"model: {model}")
    return chain_yaml(local, provider_yaml("cloud", cloud_url), profiles=profiles)


async def test_a_provider_switched_to_another_model_is_not_judged_by_the_old_models_speed(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream(default=stream(0.015)) as local,
        FakeUpstream(default=stream(0.015)) as cloud,
    ):
        d = await start_daemon(config(local.url, cloud.url, model="qwen-7b", profiles=PROFILES))
        served = await asyncio.gather(*(ask(d) for _ in range(USUAL_MIN)))
        assert served == ["local"] * USUAL_MIN
        status_of(d.daemon)
        pace = status_of(d.daemon).providers[0].pace
        assert pace is not None and pace.answers == USUAL_MIN
        d.config_path.write_text(config(local.url, cloud.url, model="qwen-32b", profiles=PROFILES))
        assert (await d.daemon.reload()).ok
        pace = status_of(d.daemon).providers[0].pace
        assert pace is not None and pace.answers == 0
        # The bigger model: a steady, lower speed, and nothing wrong.
        local.default = stream(0.04)
        served = []
        for _ in range(RECENT):
            served.append(await ask(d))
            status_of(d.daemon)  # takes that answer's summary
        assert local.requests[-1].json["model"] == "qwen-32b"
        pace = status_of(d.daemon).providers[0].pace
        assert pace is not None and not pace.slow and pace.answers == RECENT, pace
        assert served == ["local"] * RECENT
        assert d.daemon.pace.demoted() == frozenset()


async def test_a_slow_provider_moved_to_another_server_is_no_longer_slow(
    start_daemon: StartDaemon,
) -> None:
    clock = MovedClock()
    async with (
        FakeUpstream() as local,
        FakeUpstream(default=stream(0)) as cloud,
        FakeUpstream(default=stream(0)) as elsewhere,
    ):
        d = await start_daemon(
            config(local.url, cloud.url, model="m", profiles=PROFILES), clock=clock
        )
        await decoded(d, clock, local, USUAL_S, USUAL_MIN)
        await decoded(d, clock, local, SLOW_S, RECENT // 2 + 1)
        await until(lambda: d.daemon.pace.demoted() == {"local"})
        # A reload that leaves the backend as it was keeps its speeds.
        d.config_path.write_text(config(local.url, elsewhere.url, model="m", profiles=PROFILES))
        assert (await d.daemon.reload()).ok
        assert d.daemon.pace.demoted() == {"local"}
        with capture_logs() as logs:
            d.config_path.write_text(config(elsewhere.url, cloud.url, model="m", profiles=PROFILES))
            assert (await d.daemon.reload()).ok
        assert d.daemon.pace.demoted() == frozenset()
        [cleared] = [e for e in logs if e["event"] == "provider.slow_cleared"]
        assert (cleared["provider"], cleared["backend_changed"]) == ("local", True)
        assert await ask(d) == "local"


DRIFT = """\
  - {name: main, providers: [local, cloud], drift_action: warn}
drift: {window: 10}
"""


async def test_a_drifting_provider_switched_to_another_model_starts_a_new_window(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    def answer(req: Recorded) -> Reply:
        if (req.json or {}).get("model") == "cloud-model":
            return Reply(json=anthropic_message("from the cloud", output_tokens=20))
        empty = anthropic_message("")
        empty["content"] = []
        empty["usage"]["output_tokens"] = 0
        return Reply(json=empty)

    fake_upstream.responder = answer
    url = fake_upstream.url
    d = await start_daemon(config(url, url, model="old", profiles=DRIFT))
    ask_: Any = {"max_tokens": 50, "messages": [{"role": "user", "content": "go on"}]}
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for _ in range(6):
            await client.messages.create(model="m", **ask_)
    await until(lambda: d.daemon.drift.flagged == {"local": "severe"})
    # Another drift setting only: the same backend, the same window.
    d.config_path.write_text(
        config(url, url, model="old", profiles=DRIFT.replace("{window: 10}", "{window: 12}"))
    )
    assert (await d.daemon.reload()).ok
    assert d.daemon.drift.flagged == {"local": "severe"}
    with capture_logs() as logs:
        d.config_path.write_text(config(url, url, model="new", profiles=DRIFT))
        assert (await d.daemon.reload()).ok
    assert d.daemon.drift.flagged == {}
    assert d.daemon.drift.verdict("local")[1] == 0  # type: ignore[index]
    [cleared] = [e for e in logs if e["event"] == "provider.drift_cleared"]
    assert (cleared["provider"], cleared["backend_changed"]) == ("local", True)
