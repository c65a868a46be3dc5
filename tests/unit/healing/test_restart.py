"""run_restart against real subprocesses: no shell, a scrubbed environment, output
to a log file with a bounded tail read back, and a process group that a timeout or
cancellation kills whole."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from coderouterd.healing.restart import PASSED_ENV, RestartOutcome, child_env, run_restart

PY = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

# A grandchild that outlives its parent unless its group is killed; it inherits
# the parent's stdout, i.e. the daemon's pipe.
SPAWN_SLEEPER = (
    "import os, subprocess, sys\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "with open(sys.argv[1] + '.tmp', 'w') as f:\n"
    "    f.write(f'{os.getpid()} {g.pid}')\n"
    "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
)


async def run(
    argv: list[str],
    *,
    provider: str = "ollama",
    timeout_s: float = 30.0,
    output_bytes: int = 4096,
    env: Mapping[str, str] = ENV,
    grace_s: float = 0.5,
    log_path: Path | None = None,
) -> RestartOutcome:
    return await run_restart(
        argv,
        provider=provider,
        timeout_s=timeout_s,
        output_bytes=output_bytes,
        env=env,
        grace_s=grace_s,
        log_path=log_path,
    )


def gone(pid: int) -> bool:
    """Whether `pid` has exited; a zombie awaiting its new parent counts as exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def read_pids(path: Path) -> tuple[int, int]:
    child, grandchild = path.read_text().split()
    return int(child), int(grandchild)


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids a test leaves running on purpose, killed afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_argv_reaches_the_child_verbatim_without_a_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child runs in tmp_path, where a shell would have created PWNED.
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "argv.json"
    args = ["a;b", "$(touch PWNED)", "`touch PWNED`", "x y", "*", "'q'", "> PWNED"]
    script = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    outcome = await run([PY, "-c", script, str(marker), *args])
    assert outcome.ok, outcome
    assert json.loads(marker.read_text()) == args
    assert os.listdir(tmp_path) == ["argv.json"]


async def test_the_child_gets_a_scrubbed_environment(tmp_path: Path) -> None:
    marker = tmp_path / "env.json"
    script = "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))"
    parent = {"PATH": os.environ["PATH"], "ANTHROPIC_API_KEY": "sk-secret", "HOME": "/x"}
    outcome = await run([PY, "-c", script, str(marker)], provider="local-ollama", env=parent)
    assert outcome.ok, outcome
    seen = json.loads(marker.read_text())
    assert seen["PATH"] == os.environ["PATH"]
    assert seen["HOME"] == "/x"
    assert seen["CODEROUTERD_PROVIDER"] == "local-ollama"
    assert "ANTHROPIC_API_KEY" not in seen
    assert "sk-secret" not in marker.read_text()
    # Python may coerce a C locale by setting LC_CTYPE itself; nothing else is added.
    assert set(seen) - {"LC_CTYPE"} == {"PATH", "HOME", "CODEROUTERD_PROVIDER"}


def test_child_env_keeps_only_the_passed_variables() -> None:
    parent = {name: f"value-{name}" for name in PASSED_ENV}
    parent |= {"OPENAI_API_KEY": "sk-1", "AWS_SECRET_ACCESS_KEY": "s", "PYTHONPATH": "/evil"}
    parent["CODEROUTERD_PROVIDER"] = "spoofed"
    env = child_env(parent, "ollama")
    assert env == {
        **{name: f"value-{name}" for name in PASSED_ENV},
        "CODEROUTERD_PROVIDER": "ollama",
    }
    assert child_env({"HOME": "/h", "SECRET": "s"}, "p") == {
        "HOME": "/h",
        "CODEROUTERD_PROVIDER": "p",
    }


@pytest.mark.parametrize(("code", "ok"), [(0, True), (3, False)])
async def test_exit_status_is_reported(code: int, ok: bool) -> None:
    outcome = await run([PY, "-c", f"raise SystemExit({code})"])
    assert outcome.exit_status == code
    assert outcome.ok is ok
    assert (outcome.signal, outcome.timed_out, outcome.error) == (None, False, None)
    assert outcome.duration_ms >= 0


async def test_small_output_is_kept_whole_with_stderr_merged() -> None:
    script = (
        "import sys\n"
        "sys.stdout.write('to stdout\\n'); sys.stdout.flush()\n"
        "sys.stderr.write('to stderr\\n'); sys.stderr.flush()\n"
    )
    outcome = await run([PY, "-c", script])
    assert outcome.output_tail == "to stdout\nto stderr\n"
    assert outcome.truncated is False


async def test_only_the_tail_of_large_output_is_kept() -> None:
    script = "import sys; sys.stdout.write('x' * 99_990 + 'THE-END-42')"
    outcome = await run([PY, "-c", script], output_bytes=2048)
    assert outcome.ok, outcome
    assert outcome.truncated is True
    assert len(outcome.output_tail.encode()) <= 2048
    assert outcome.output_tail.endswith("x" * 100 + "THE-END-42")


async def test_a_trimmed_tail_starts_at_a_whole_character() -> None:
    # Two-byte characters and an odd limit: trimming cuts one in half.
    script = "import sys; sys.stdout.buffer.write(('é' * 50_000 + 'END').encode())"
    outcome = await run([PY, "-c", script], output_bytes=1002)
    assert outcome.truncated is True
    assert outcome.output_tail == "é" * 499 + "END"


async def test_a_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = SPAWN_SLEEPER + "import time; time.sleep(60)\n"
    outcome = await run([PY, "-c", script, str(pids)], timeout_s=1.0, grace_s=0.5)
    assert outcome.timed_out is True
    assert outcome.exit_status is None
    assert outcome.signal == signal.SIGTERM
    assert outcome.ok is False
    child, grandchild = read_pids(pids)
    assert gone(child)
    assert await wait_gone(grandchild), "the grandchild outlived the timeout"


async def test_a_command_ignoring_sigterm_is_killed() -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    outcome = await run([PY, "-c", script], timeout_s=1.0, grace_s=0.5)
    assert outcome.timed_out is True
    assert outcome.signal == signal.SIGKILL
    assert outcome.exit_status is None
    assert outcome.output_tail == "ready\n"


async def test_a_background_server_holding_the_output_neither_blocks_nor_dies(
    tmp_path: Path, strays: list[int]
) -> None:
    pids = tmp_path / "pids"
    script = SPAWN_SLEEPER + "print('started', flush=True)\n"
    task = asyncio.create_task(run([PY, "-c", script, str(pids)], timeout_s=30.0))
    done, _ = await asyncio.wait([task], timeout=10.0)
    _, grandchild = read_pids(pids)
    strays.append(grandchild)
    assert done, "run_restart waited for the output's EOF instead of the leader's exit"
    outcome = task.result()
    assert outcome.ok, outcome
    assert outcome.timed_out is False
    assert outcome.output_tail == "started\n"
    assert not gone(grandchild), "the background server was killed after a normal exit"


# A server started in the background that logs to the stdout it inherited,
# long after the command that started it has exited.
CHATTY_SERVER = (
    "import subprocess, sys\n"
    'server = \'import sys, time\\nfor i in range(40):\\n    print("tick", i, flush=True)\\n'
    "    time.sleep(0.05)\\n'\n"
    "g = subprocess.Popen([sys.executable, '-c', server])\n"
    "open(sys.argv[1], 'w').write(str(g.pid))\n"
    "print('started', flush=True)\n"
)


async def test_a_background_server_keeps_logging_to_the_providers_log_after_the_command_exits(
    tmp_path: Path, strays: list[int]
) -> None:
    log = tmp_path / "restart" / "ollama.log"
    log.parent.mkdir()
    log.write_text("the last run's output\n")
    pid_file = tmp_path / "pid"
    outcome = await run([PY, "-c", CHATTY_SERVER, str(pid_file)], log_path=log)
    server = int(pid_file.read_text())
    strays.append(server)
    assert outcome.ok, outcome
    assert "started\n" in outcome.output_tail
    assert "the last run's output" not in outcome.output_tail
    await asyncio.sleep(0.5)
    # Through a pipe the daemon had stopped reading, its next line would kill it.
    assert not gone(server), "the background server died writing its log"
    assert await wait_gone(server, within_s=10.0)
    written = log.read_text()
    assert "started\n" in written
    assert "tick 39\n" in written
    assert log.stat().st_mode & 0o777 == 0o600


async def test_the_log_is_written_when_it_can_be_and_the_command_runs_when_it_cannot(
    tmp_path: Path,
) -> None:
    script = "print('restarted', flush=True)"
    log = tmp_path / "state" / "restart" / "ollama.log"
    outcome = await run([PY, "-c", script], log_path=log)
    assert (outcome.ok, outcome.output_tail, log.read_text()) == (
        True,
        "restarted\n",
        "restarted\n",
    )
    assert log.parent.stat().st_mode & 0o777 == 0o700
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    outcome = await run([PY, "-c", script], log_path=blocked / "restart" / "ollama.log")
    assert outcome.ok, outcome
    assert outcome.output_tail.startswith(f"(output not kept: cannot open {blocked}/restart")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["/nonexistent/cmd"], "No such file or directory: '/nonexistent/cmd'"),
        ([], "empty command"),
    ],
)
async def test_a_command_that_cannot_start_is_reported(argv: list[str], error: str) -> None:
    outcome = await run(argv)
    assert outcome.error == error
    assert (outcome.exit_status, outcome.signal, outcome.timed_out) == (None, None, False)
    assert (outcome.output_tail, outcome.truncated, outcome.ok) == ("", False, False)


async def test_a_file_that_is_not_executable_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "restart.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    outcome = await run([str(script)])
    assert outcome.error is not None
    assert outcome.error.startswith("Permission denied")
    assert outcome.ok is False


async def test_cancellation_kills_the_group_and_propagates(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = SPAWN_SLEEPER + "import time; time.sleep(60)\n"
    task = asyncio.create_task(run([PY, "-c", script, str(pids)], timeout_s=30.0))
    deadline = time.monotonic() + 10.0
    while not pids.exists() and not task.done():
        assert time.monotonic() < deadline, "the command never started"
        await asyncio.sleep(0.02)
    child, grandchild = read_pids(pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_gone(child), "the command outlived the cancellation"
    assert await wait_gone(grandchild), "the grandchild outlived the cancellation"
