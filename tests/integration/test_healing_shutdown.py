"""restart_commands still running when the daemon shuts down."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_error
from tests.fakes.upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "hello"}]
BUSY = anthropic_error(503, "overloaded_error", "busy")
# A restart that takes its time and, like many service scripts, finishes its
# work when told to stop: it notes when SIGTERM came, and carries on.
STUBBORN = """
import signal, sys, time
def noted(*_):
    with open(sys.argv[1], "a") as f:
        f.write(f"{time.time()}\\n")
signal.signal(signal.SIGTERM, noted)
for _ in range(600):
    time.sleep(0.1)
"""


async def fail_four_times(d: RunningDaemon, profile: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(4):
            async with http.post(
                f"{d.url}/v1/messages",
                json={"model": "m", "max_tokens": 5, "messages": MESSAGES},
                headers={"x-coderouter-profile": profile},
                timeout=aiohttp.ClientTimeout(total=15),
            ) as resp:
                await resp.read()


async def test_at_shutdown_every_running_restart_command_gets_sigterm_at_once(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Two providers' restart_commands run when the daemon stops: both get
    SIGTERM at once, and shutdown waits one 5 s grace, not one per command.
    Each run is audited, stopped at shutdown."""
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    marks = {name: tmp_path / f"{name}.term" for name in ("a", "b")}
    async with FakeUpstream(default=BUSY) as a, FakeUpstream(default=BUSY) as b:
        providers = "".join(
            provider_yaml(
                name,
                fake.url,
                extra=f"restart_command: [{sys.executable}, {script}, {marks[name]}]\n"
                "restart_timeout_s: 60",
            )
            for name, fake in (("a", a), ("b", b))
        )
        yaml = (
            "self_healing: {recovery_initial_interval_s: 60}\n"
            f"providers:{providers}"
            "profiles:\n"
            "  - {name: pa, providers: [a], backend_health_action: exclude, "
            "backend_health_threshold: 2}\n"
            "  - {name: pb, providers: [b], backend_health_action: exclude, "
            "backend_health_threshold: 2}\n"
        )
        d = await start_daemon(yaml, env={"PATH": os.environ["PATH"]})
        await fail_four_times(d, "pa")
        await fail_four_times(d, "pb")
        book = d.daemon.healing.book
        await until(lambda: book.health("a").restarting and book.health("b").restarting)
        # Both commands are up and have installed their handler.
        await asyncio.sleep(0.5)

        started = time.time()
        await d.runner.cleanup()
        took = time.time() - started

    termed = {name: float(path.read_text().split()[0]) - started for name, path in marks.items()}
    assert max(termed.values()) < 1.0, f"SIGTERM came {termed} s after shutdown began"
    assert took < 8.0, f"shutdown took {took:.1f} s"
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        ran = [r.fields for r in await tail(conn, 100) if r.event == "provider.restart_command"]
    finally:
        await conn.close()
    assert sorted((f["provider"], f["error"]) for f in ran) == [
        ("a", "stopped at shutdown"),
        ("b", "stopped at shutdown"),
    ]
    assert all(f["duration_ms"] >= 500 for f in ran)


async def test_nothing_starts_once_self_healing_has_closed(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A request that finishes while the daemon shuts down may exclude its
    provider: its restart_command and probes are not started any more."""
    marker = tmp_path / "ran"
    script = tmp_path / "r.py"
    script.write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    async with FakeUpstream(default=BUSY) as a:
        yaml = (
            f"providers:{provider_yaml('a', a.url, extra=f'restart_command: [{sys.executable}, {script}]')}"
            "profiles:\n"
            "  - {name: pa, providers: [a], backend_health_action: exclude, "
            "backend_health_threshold: 2}\n"
        )
        d = await start_daemon(yaml, env={"PATH": os.environ["PATH"]})
        healing = d.daemon.healing
        await healing.close()
        await fail_four_times(d, "pa")
        assert healing.book.excluded() == {"a"}
        await asyncio.sleep(0.5)
    assert not marker.exists()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("healing:")]
