"""Stopping a restart_command's process group, at its timeout or at the
daemon's shutdown: SIGTERM to the whole group, which gets `grace_s` to exit
(its helpers too, not just the leader), and SIGKILL to what is left of it
then; a group gone sooner ends the stop at once."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coderouterd.healing.restart import RestartOutcome, run_restart
from tests.unit.healing.test_restart import gone, wait_gone

pytestmark = pytest.mark.timeout(30)

PY = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
PR_SET_CHILD_SUBREAPER = 36


def helper(on_sigterm: str) -> str:
    """A helper of the command (a server it runs, say): once its SIGTERM
    handling is set up, it writes its pid to `<argv[1]>.ready`."""
    return (
        "import os, signal, sys, time\n"
        f"{on_sigterm}\n"
        "with open(sys.argv[1] + '.tmp', 'w') as f:\n"
        "    f.write(str(os.getpid()))\n"
        "os.replace(sys.argv[1] + '.tmp', sys.argv[1] + '.ready')\n"
        "time.sleep(60)\n"
    )


# Stops cleanly on SIGTERM: it needs a moment to flush its state, then notes it did.
CLEAN = helper(
    "def term(*_):\n"
    "    time.sleep(0.3)\n"
    "    open(sys.argv[1], 'w').write('clean')\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, term)"
)
DEAF = helper("signal.signal(signal.SIGTERM, signal.SIG_IGN)")
PLAIN = helper("")
# The command itself: starts the helper in its group, then hangs; SIGTERM
# ends it at once (Python's default).
LEADER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', sys.argv[2], sys.argv[1]])\n"
    "time.sleep(60)\n"
)


def command(
    marker: Path, helper_script: str, *, timeout_s: float, grace_s: float
) -> asyncio.Task[RestartOutcome]:
    return asyncio.create_task(
        run_restart(
            [PY, "-c", LEADER, str(marker), helper_script],
            provider="local",
            timeout_s=timeout_s,
            output_bytes=1024,
            env=ENV,
            grace_s=grace_s,
        )
    )


async def helper_ready(marker: Path) -> int:
    """The helper's pid, once it is ready."""
    ready = marker.with_name(marker.name + ".ready")
    async with asyncio.timeout(10):
        while not ready.exists():  # noqa: ASYNC110 - nothing to wait on but the file
            await asyncio.sleep(0.02)
    return int(ready.read_text())


async def cancelled(task: asyncio.Task[RestartOutcome]) -> float:
    """Cancel `task` (the daemon shutting down) and how long it took to end."""
    started = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return time.monotonic() - started


@pytest.fixture
def adopted() -> Iterator[list[int]]:
    """The test process adopts the orphans of its children's groups and, like
    an init that does not reap (PID 1 of many containers), leaves them
    zombies: still in their group, yet exited. The pids listed are reaped at
    the end."""
    if not sys.platform.startswith("linux"):
        pytest.skip("a child subreaper is Linux's")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("cannot become a child subreaper")
    pids: list[int] = []
    try:
        yield pids
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


async def test_a_timed_out_commands_helpers_get_the_grace_before_sigkill(tmp_path: Path) -> None:
    """The leader exits at once on SIGTERM; its helper, which stops cleanly
    on SIGTERM, still gets the time it needs, within the grace."""
    marker = tmp_path / "helper"
    outcome = await command(marker, CLEAN, timeout_s=1.5, grace_s=1.0)
    assert outcome.timed_out
    assert outcome.signal == signal.SIGTERM
    await helper_ready(marker)
    assert marker.exists(), "the helper was SIGKILLed before its SIGTERM handler finished"


async def test_at_shutdown_a_commands_helpers_get_the_grace_before_sigkill(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "helper"
    task = command(marker, CLEAN, timeout_s=60, grace_s=1.0)
    await helper_ready(marker)
    await cancelled(task)
    assert marker.exists(), "the helper was SIGKILLed before its SIGTERM handler finished"


async def test_a_helper_ignoring_sigterm_is_killed_when_the_grace_ends(tmp_path: Path) -> None:
    marker = tmp_path / "helper"
    task = command(marker, DEAF, timeout_s=60, grace_s=0.5)
    pid = await helper_ready(marker)
    took = await cancelled(task)
    assert took >= 0.45, f"SIGKILL came {took:.2f} s after SIGTERM, not at the grace's end"
    assert await wait_gone(pid, within_s=2.0), "the helper outlived the grace"


async def test_a_group_gone_on_sigterm_ends_the_stop_at_once(
    tmp_path: Path, adopted: list[int]
) -> None:
    """Shutdown does not wait out a 5 s grace for a group that exited on
    SIGTERM, even if nothing reaps the exited helper."""
    marker = tmp_path / "helper"
    task = command(marker, PLAIN, timeout_s=60, grace_s=5.0)
    pid = await helper_ready(marker)
    adopted.append(pid)
    took = await cancelled(task)
    assert gone(pid)
    assert took < 2.0, f"the stop took {took:.2f} s for a group gone at once"
