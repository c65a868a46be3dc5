"""restart_min_interval_s across a restart of the daemon: the audit log tells
when each restart_command last ran."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from structlog.testing import capture_logs

from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
BUSY = anthropic_error(503, "overloaded_error", "busy")


async def ask(d: RunningDaemon) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{d.url}/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": MESSAGES},
            timeout=aiohttp.ClientTimeout(total=15),
        ) as resp,
    ):
        await resp.read()


def config(a: str, b: str, restart: str) -> str:
    return (
        "self_healing: {recovery_initial_interval_s: 30, recovery_jitter: 0,"
        " restart_min_interval_s: 600}\n"
        f"providers:{provider_yaml('a', a, extra=f'restart_command: {restart}')}"
        f"{provider_yaml('b', b)}"
        "profiles:\n"
        "  - {name: default, providers: [a, b], backend_health_action: exclude, "
        "backend_health_threshold: 2}\n"
    )


async def stop(d: RunningDaemon) -> None:
    await d.runner.cleanup()
    await d.state.close()


async def excluded_again_in_a_new_daemon(
    start_daemon: StartDaemon, yaml: str, state_dir: Path
) -> list[dict]:
    """Start a daemon on `state_dir`, fail `a` into an exclusion, and return
    the restart_skipped lines logged."""
    with capture_logs() as logs:
        d = await start_daemon(yaml, env={"PATH": os.environ["PATH"]}, state_dir=state_dir)
        book = d.daemon.healing.book
        if book.excluded():
            # Loaded from the last run: never restarted at start-up; put back by hand.
            await d.daemon.provider_action("restore", "a", 1000)
        for _ in range(4):
            await ask(d)
        assert book.excluded() == {"a"}
        await until(lambda: not book.health("a").restarting, timeout=10)
    return [e for e in logs if e["event"] == "provider.restart_skipped"]


@contextlib.asynccontextmanager
async def restarting(tmp_path: Path, script: str) -> AsyncIterator[tuple[str, Path, Path]]:
    """`a` failing and `b` answering, `a`'s restart_command a Python `script`
    (given `marker`, the file it writes): the config, the state directory and
    the marker."""
    marker = tmp_path / "ran"
    path = tmp_path / "restart.py"
    path.write_text(script.format(marker=str(marker)))
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        yield config(a.url, b.url, f"[{sys.executable}, {path}]"), tmp_path / "state", marker


async def failed_into_a_restart(
    start_daemon: StartDaemon, yaml: str, state_dir: Path
) -> RunningDaemon:
    d = await start_daemon(yaml, env={"PATH": os.environ["PATH"]}, state_dir=state_dir)
    for _ in range(4):
        await ask(d)
    return d


async def test_restart_min_interval_holds_across_a_restart_of_the_daemon(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Excluded and restarted, restored by hand, the daemon restarted, and the
    backend fails again: its restart_command does not run a second time
    within restart_min_interval_s."""
    script = "open({marker!r}, 'a').write('x')\n"
    async with restarting(tmp_path, script) as (yaml, state_dir, marker):
        first = await failed_into_a_restart(start_daemon, yaml, state_dir)
        await until(lambda: first.daemon.healing.book.health("a").restarts == 1, timeout=10)
        assert marker.read_text() == "x"
        await first.daemon.provider_action("restore", "a", 1000)
        await stop(first)

        skipped = await excluded_again_in_a_new_daemon(start_daemon, yaml, state_dir)

    assert marker.read_text() == "x", "restart_command ran again within restart_min_interval_s"
    [line] = skipped
    assert line["why"] == "too_soon"
    assert 590 < line["next_allowed_in_s"] <= 600


async def test_a_restart_command_stopped_at_shutdown_counts_at_the_next_start(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The daemon stops while a restart_command runs (both restarted together,
    say): the next start still knows it ran, and does not run it again."""
    script = "import time\nopen({marker!r}, 'a').write('x')\ntime.sleep(60)\n"
    async with restarting(tmp_path, script) as (yaml, state_dir, marker):
        first = await failed_into_a_restart(start_daemon, yaml, state_dir)
        await until(marker.exists)
        await stop(first)

        skipped = await excluded_again_in_a_new_daemon(start_daemon, yaml, state_dir)

    assert marker.read_text() == "x"
    assert [line["why"] for line in skipped] == ["too_soon"]
