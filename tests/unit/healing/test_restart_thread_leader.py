"""A restart_command whose main thread has exited while another thread runs:
/proc shows its thread-group leader as `Z`, yet the process is alive, and
past its timeout and grace it gets SIGKILL all the same."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coderouterd.healing.restart import run_restart

pytestmark = pytest.mark.timeout(30)

# Ignores SIGTERM; a second thread runs on after the main one calls pthread_exit.
SOURCE = r"""
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static void *worker(void *arg) { (void)arg; for (;;) pause(); return 0; }
int main(int argc, char **argv) {
    signal(SIGTERM, SIG_IGN);
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    FILE *f = fopen(argv[1], "w");
    fprintf(f, "%d", getpid());
    fclose(f);
    pthread_exit(0);
}
"""


def _threads_running(pid: int) -> list[str]:
    """The states of the process's threads that are not zombies."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    states = []
    for tid in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if state != "Z":
            states.append(state)
    return states


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    if not sys.platform.startswith("linux"):
        pytest.skip("/proc is Linux's")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "deaf.c"
    src.write_text(SOURCE)
    exe = tmp_path / "deaf"
    subprocess.run(  # noqa: S603 - fixed argv
        [cc, "-pthread", "-o", str(exe), str(src)], check=True, timeout=60, capture_output=True
    )
    return exe


async def test_a_command_whose_main_thread_exited_is_still_killed(
    tmp_path: Path, helper: Path
) -> None:
    """It ignores SIGTERM: the stop's wait for the group must not take the
    exited main thread for the whole process, or no SIGKILL follows."""
    pidfile = tmp_path / "pid"
    pid = None
    try:
        outcome = await asyncio.wait_for(
            run_restart(
                [str(helper), str(pidfile)],
                provider="local",
                timeout_s=0.5,
                output_bytes=1024,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                grace_s=0.5,
            ),
            timeout=10,
        )
        assert outcome.timed_out
        pid = int(pidfile.read_text())
        deadline = time.monotonic() + 2.0
        while _threads_running(pid) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert _threads_running(pid) == [], (
            f"pid {pid} still runs after the timeout and the grace: no SIGKILL was sent"
        )
    finally:
        if pid is None and pidfile.exists():
            pid = int(pidfile.read_text())
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
