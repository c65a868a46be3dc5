"""Quality drift through a real daemon: a local backend whose answers go empty is
flagged, demoted, shown, and still flagged after a restart."""

from __future__ import annotations

from pathlib import Path

import anthropic
from structlog.testing import capture_logs

from coderouterd.ctl.render import render_status
from coderouterd.healing.drift import RETRY_S
from coderouterd.status import status_of
from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.test_pace import MovedClock

PROFILES = """\
  - {name: main, providers: [local, cloud], drift_action: demote}
  - {name: watch, providers: [local]}
drift: {window: 10}
"""


def answer(req: Recorded) -> Reply:
    if (req.json or {}).get("model") == "cloud-model":
        return Reply(json=anthropic_message("from the cloud"))
    # The local model has gone quiet: a well-formed answer with nothing in it.
    empty = anthropic_message("")
    empty["content"] = []
    empty["usage"]["output_tokens"] = 0
    return Reply(json=empty)


async def test_an_empty_answering_backend_is_flagged_demoted_and_remembered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = answer
    config = chain_yaml(
        provider_yaml("local", fake_upstream.url),
        provider_yaml("cloud", fake_upstream.url),
        profiles=PROFILES,
    )
    state_dir = tmp_path / "state"
    d = await start_daemon(config, state_dir=state_dir)
    ask = {"max_tokens": 50, "messages": [{"role": "user", "content": "go on"}]}
    with capture_logs() as logs:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
            served = [
                (await client.messages.with_raw_response.create(model="m", **ask)).headers
                for _ in range(6)
            ]
            # Six empty answers are enough to judge; the verdict comes within a second.
            await until(lambda: d.daemon.drift.flagged == {"local": "severe"})
            served.append(
                (await client.messages.with_raw_response.create(model="m", **ask)).headers
            )
            watched = await client.messages.with_raw_response.create(
                model="m", extra_headers={"x-coderouter-mode": "watch"}, **ask
            )
    assert [h["x-coderouter-provider"] for h in served] == ["local"] * 6 + ["cloud"]
    assert all("x-coderouter-drift" not in h for h in served[:6])
    # A profile that only warns still uses it, and says so.
    assert watched.headers["x-coderouter-provider"] == "local"
    assert watched.headers["x-coderouter-drift"] == "severe"
    [drift] = [e for e in logs if e["event"] == "provider.drift"]
    assert (drift["provider"], drift["severity"]) == ("local", "severe")
    assert drift["reason"].startswith("empty_response_rate=1.00")
    local = status_of(d.daemon).providers[0]
    assert local.drift is not None and local.drift.severity == "severe"
    assert "drifting (severe: empty_response_rate=1.00" in render_status(status_of(d.daemon))
    cloud = status_of(d.daemon).providers[1]
    assert cloud.drift is not None and cloud.drift.severity == "none"

    # The request log keeps what the answers did; a new daemon reads it back.
    await d.state.writer.flush()
    with capture_logs() as logs:
        again = await start_daemon(config, state_dir=state_dir)
    assert [(e["provider"], e["restored"]) for e in logs if e["event"] == "provider.drift"] == [
        ("local", True)
    ]
    assert again.daemon.drift.flagged == {"local": "severe"}


async def test_failed_attempts_count_after_a_restart_too(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    def flaky(req: Recorded) -> Reply:
        if (req.json or {}).get("model") == "cloud-model":
            return Reply(json=anthropic_message("from the cloud"))
        return Reply(
            status=503, json={"type": "error", "error": {"type": "api_error", "message": "x"}}
        )

    fake_upstream.responder = flaky
    config = chain_yaml(
        provider_yaml("local", fake_upstream.url),
        provider_yaml("cloud", fake_upstream.url),
        profiles="  - {name: main, providers: [local, cloud]}\ndrift: {window: 10}\n",
    )
    state_dir = tmp_path / "state"
    d = await start_daemon(config, state_dir=state_dir)
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for _ in range(6):
            await client.messages.create(
                model="m", max_tokens=50, messages=[{"role": "user", "content": "go on"}]
            )
    # Every request failed on local before cloud answered: only failures in its window.
    await until(lambda: d.daemon.drift.flagged == {"local": "mild"})
    await d.state.writer.flush()
    again = await start_daemon(config, state_dir=state_dir)
    assert again.daemon.drift.flagged == {"local": "mild"}
    assert again.daemon.drift.verdict("local") == (d.daemon.drift.verdict("local")[0], 6)


async def test_a_demoted_backend_fixed_meanwhile_gets_its_place_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fixed = False

    def answer_then_mend(req: Recorded) -> Reply:
        local = (req.json or {}).get("model") != "cloud-model"
        return Reply(json=anthropic_message("back")) if fixed and local else answer(req)

    fake_upstream.responder = answer_then_mend
    clock = MovedClock()
    config = chain_yaml(
        provider_yaml("local", fake_upstream.url),
        provider_yaml("cloud", fake_upstream.url),
        profiles=PROFILES,
    )
    d = await start_daemon(config, clock=clock)
    ask = {"max_tokens": 50, "messages": [{"role": "user", "content": "go on"}]}
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:

        async def served() -> str:
            raw = await client.messages.with_raw_response.create(model="m", **ask)
            return raw.headers["x-coderouter-provider"]

        assert [await served() for _ in range(6)] == ["local"] * 6
        await until(lambda: d.daemon.drift.demoted() == {"local"})
        assert "tried last for 10m" in render_status(status_of(d.daemon))
        fixed = True
        # Tried last, so nothing shows it is fixed until its time is up.
        assert await served() == "cloud"
        clock.advance(RETRY_S + 1)
        with capture_logs() as logs:
            assert await served() == "local"
            status_of(d.daemon)  # takes that answer's summary
        assert [e.get("retried") for e in logs if e["event"] == "provider.drift_cleared"] == [True]
        assert d.daemon.drift.flagged == {} and [await served() for _ in range(3)] == ["local"] * 3

        # Drifting again: `ctl restore` forgets it at once.
        fixed = False
        assert [await served() for _ in range(6)] == ["local"] * 6
        await until(lambda: d.daemon.drift.demoted() == {"local"})
        reply = await d.daemon.provider_action("restore", "local", None)
        assert reply.changed and reply.message == "was not excluded; its drift is forgotten"
        assert d.daemon.drift.flagged == {} and await served() == "local"
