"""A cooldown that starts while a restart_command from an earlier exclusion runs."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

BUSY = anthropic_error(503, "overloaded_error", "busy")
OOM = anthropic_error(
    500, "api_error", "model requires more system memory (5.2 GiB) than is available (3.1 GiB)"
)


def probes(requests: list[Any]) -> int:
    return sum(1 for r in requests if (r.json or {}).get("max_tokens") == 1)


async def ask(d: RunningDaemon, profile: str) -> dict[str, str]:
    body = {"model": profile, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http, http.post(f"{d.url}/v1/messages", json=body) as r:
        await r.read()
        return dict(r.headers)


async def test_a_cooldown_is_not_probed_or_ended_early_because_an_old_restart_finished(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """`a` is excluded as unhealthy and its restart_command (1 s) starts; a
    request through a `warn` profile gets through (restored); then `a` runs
    out of memory and a `skip` profile cools it down for 120 s. The end of
    the old restart gives the cooldown no probe: it lasts its 120 s."""
    script = tmp_path / "slow.py"
    script.write_text("import time\ntime.sleep(1.0)\n")
    restart = f"restart_command: [{sys.executable}, {script}]"
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        yaml = (
            "self_healing: {recovery_initial_interval_s: 0.2, recovery_jitter: 0,"
            " probe_timeout_s: 2}\n"
            f"providers:{provider_yaml('a', a.url, extra=restart)}{provider_yaml('b', b.url)}"
            "profiles:\n"
            "  - {name: default, providers: [a, b], backend_health_action: exclude, "
            "backend_health_threshold: 2}\n"
            "  - {name: patient, providers: [a, b]}\n"
            "  - {name: cool, providers: [a, b], memory_pressure_action: skip, "
            "memory_pressure_cooldown_s: 120}\n"
        )
        d = await start_daemon(yaml, env={"PATH": os.environ["PATH"]})
        book = d.daemon.healing.book
        for _ in range(4):
            await ask(d, "default")
        assert book.excluded() == {"a"} and book.health("a").restarting
        a.default = Reply(json=anthropic_message("a"))
        assert (await ask(d, "patient"))["x-coderouter-provider"] == "a"
        assert not book.excluded()
        a.script(OOM)
        assert (await ask(d, "cool"))["x-coderouter-fallback-reason"] == "a=memory_pressure"
        assert book.cooling() == {"a"}
        await until(lambda: not book.health("a").restarting, timeout=10)
        before = probes(a.requests)
        # Three times the probe interval after the restart ended.
        await asyncio.sleep(0.6)

        assert book.cooling() == {"a"}
        assert probes(a.requests) == before
        cooldown = book.health("a").excluded
        assert cooldown is not None and cooldown.next_probe is None
