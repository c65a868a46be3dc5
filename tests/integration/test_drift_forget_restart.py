"""A drift that ended stays ended across a restart: forgotten by `ctl
restore`, or set aside by a good answer where a `demote` profile tried the
provider in its place again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
from structlog.testing import capture_logs

from coderouterd.healing.drift import RETRY_S
from coderouterd.status import status_of
from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.test_pace import MovedClock

DEMOTE = """\
  - {name: main, providers: [local, cloud], drift_action: demote}
drift: {window: 10}
"""
ASK: Any = {"max_tokens": 50, "messages": [{"role": "user", "content": "go on"}]}


class Backends:
    """`cloud` answers well; `local` answers with nothing until it is fixed."""

    def __init__(self) -> None:
        self.fixed = False

    def __call__(self, req: Recorded) -> Reply:
        if (req.json or {}).get("model") == "cloud-model" or self.fixed:
            return Reply(json=anthropic_message("a fine answer", output_tokens=20))
        empty = anthropic_message("")
        empty["content"] = []
        empty["usage"]["output_tokens"] = 0
        return Reply(json=empty)


async def served(url: str) -> str:
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(model="m", **ASK)
        return str(raw.headers["x-coderouter-provider"])


async def test_a_drift_forgotten_by_ctl_restore_stays_forgotten_after_a_restart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    backends = fake_upstream.responder = Backends()
    config = chain_yaml(
        provider_yaml("local", fake_upstream.url),
        provider_yaml("cloud", fake_upstream.url),
        profiles=DEMOTE,
    )
    state_dir = tmp_path / "state"
    d = await start_daemon(config, state_dir=state_dir)
    assert [await served(d.url) for _ in range(6)] == ["local"] * 6
    await until(lambda: d.daemon.drift.demoted() == {"local"})
    backends.fixed = True
    reply = await d.daemon.provider_action("restore", "local", None)
    assert reply.message == "was not excluded; its drift is forgotten"
    assert [await served(d.url) for _ in range(2)] == ["local"] * 2
    status_of(d.daemon)
    assert d.daemon.drift.flagged == {}

    await d.state.writer.flush()
    with capture_logs() as logs:
        again = await start_daemon(config, state_dir=state_dir)
    assert [e for e in logs if e["event"] == "provider.drift"] == []
    assert again.daemon.drift.flagged == {}
    assert again.daemon.drift.demoted() == frozenset()
    # Only the answers since the restore judge it.
    assert again.daemon.drift.verdict("local")[1] == 2  # type: ignore[index]
    assert await served(again.url) == "local"


async def test_a_drift_a_retried_answer_ended_stays_ended_after_a_restart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    backends = fake_upstream.responder = Backends()
    clock = MovedClock()
    config = chain_yaml(
        provider_yaml("local", fake_upstream.url),
        provider_yaml("cloud", fake_upstream.url),
        profiles=DEMOTE,
    )
    state_dir = tmp_path / "state"
    d = await start_daemon(config, state_dir=state_dir, clock=clock)
    assert [await served(d.url) for _ in range(6)] == ["local"] * 6
    await until(lambda: d.daemon.drift.demoted() == {"local"})
    backends.fixed = True
    assert await served(d.url) == "cloud"
    clock.advance(RETRY_S + 1)
    with capture_logs() as logs:
        assert await served(d.url) == "local"
        status_of(d.daemon)  # takes that answer's summary
    assert [e.get("retried") for e in logs if e["event"] == "provider.drift_cleared"] == [True]
    assert d.daemon.drift.flagged == {}

    await d.state.writer.flush()
    with capture_logs() as logs:
        again = await start_daemon(config, state_dir=state_dir, clock=clock)
    assert [e for e in logs if e["event"] == "provider.drift"] == []
    assert again.daemon.drift.flagged == {}
    assert again.daemon.drift.verdict("local")[1] == 1  # type: ignore[index]
    assert await served(again.url) == "local"
