"""A restart reads back only the speeds of the model a provider is
configured with: a provider edited to another model while the daemon was
down is not judged by the old model's speed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from coderouterd.healing.pace import RECENT, USUAL_MIN
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon
from tests.fakes.upstream import FakeUpstream
from tests.integration.test_pace import PROFILES, ask, stream
from tests.integration.test_pace_model_change import config


def answers_read_back(d: RunningDaemon) -> int:
    """How many of `local`'s speeds its pace judges it on."""
    pace = status_of(d.daemon).providers[0].pace
    assert pace is not None
    return pace.answers


async def test_a_restart_with_a_bigger_model_does_not_judge_it_by_the_old_models_speed(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    async with (
        FakeUpstream(default=stream(0.015)) as local,
        FakeUpstream(default=stream(0.015)) as cloud,
    ):
        state_dir = tmp_path / "state"
        small = config(local.url, cloud.url, model="qwen-7b", profiles=PROFILES)
        d = await start_daemon(small, state_dir=state_dir)
        served = await asyncio.gather(*(ask(d) for _ in range(USUAL_MIN)))
        assert served == ["local"] * USUAL_MIN
        await d.state.writer.flush()
        with sqlite3.connect(d.state.path) as db:
            models = db.execute("SELECT DISTINCT provider, model FROM attempts").fetchall()
        assert models == [("local", "qwen-7b")]

        # The config is edited while the daemon is down: a bigger model,
        # decoding at a steady, lower speed, and nothing wrong with it.
        big = config(local.url, cloud.url, model="qwen-32b", profiles=PROFILES)
        with capture_logs() as logs:
            again = await start_daemon(big, state_dir=state_dir)
            assert answers_read_back(again) == 0
            local.default = stream(0.04)
            served = []
            for _ in range(RECENT):
                served.append(await ask(again))
                status_of(again.daemon)  # takes that answer's summary
        assert local.requests[-1].json["model"] == "qwen-32b"
        assert served == ["local"] * RECENT
        assert again.daemon.pace.demoted() == frozenset()
        assert [e for e in logs if e["event"] == "provider.slow"] == []

        # Restarted on the same model, it gets its own speeds back, and only them.
        await again.state.writer.flush()
        third = await start_daemon(big, state_dir=state_dir)
        assert answers_read_back(third) == RECENT
