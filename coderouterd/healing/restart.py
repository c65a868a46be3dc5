"""Run a provider's operator-configured `restart_command`, safely and within bounds.

When the daemon excludes a backend as unhealthy it may run a command such as
`["systemctl", "--user", "restart", "ollama"]` to bring it back. The command
comes from configuration, so this module treats it with care:

- It is an argv list run without a shell: nothing in it is quoted, expanded or
  split, so a provider name or argument cannot inject a second command.
- It runs in its own session (process group), so a timeout or the daemon's
  shutdown can kill every helper the command started, not just the leader.
- Its environment is scrubbed to `PASSED_ENV` plus `CODEROUTERD_PROVIDER`:
  the daemon holds upstream API keys that a restart script must never see.
- Only the last `output_bytes` of its combined stdout and stderr are kept, so
  a chatty command cannot grow the daemon's memory.
- It is finished when the leader exits, not when its output reaches EOF: a
  script that starts the server in the background (`nohup ollama serve &`)
  leaves that server holding the output pipe, possibly for ever. The pipe gets
  a short grace to drain and is then closed, and the group is left alone so
  the server keeps running. Its later writes to the closed pipe fail (a Go
  program exits on SIGPIPE from stdout unless it handles it), so such a script
  should redirect the server's output: `nohup ollama serve >/dev/null 2>&1 &`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Variables passed through to the child from the daemon's environment, when
# set; nothing else, so API keys and other secrets never reach the child.
PASSED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TZ",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
)

# How long output may keep arriving after the leader exits; helpers it left
# in the background can hold the pipe open indefinitely.
DRAIN_S = 0.5


@dataclass(frozen=True, slots=True)
class RestartOutcome:
    """What a restart command did. `exit_status` is None when the leader was
    killed by a signal, timed out, or never started; `error` says why it could
    not be started."""

    exit_status: int | None
    signal: int | None
    timed_out: bool
    duration_ms: float
    output_tail: str
    truncated: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and self.error is None


def child_env(env: Mapping[str, str], provider: str) -> dict[str, str]:
    """PASSED_ENV taken from env when present, plus CODEROUTERD_PROVIDER=provider."""
    kept = {name: env[name] for name in PASSED_ENV if name in env}
    kept["CODEROUTERD_PROVIDER"] = provider
    return kept


class _Tail(asyncio.Protocol):
    """Keeps the last `limit` bytes read from the pipe; memory stays bounded
    by the limit plus one read, however much the command prints."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data
        excess = len(self.data) - self.limit
        if excess > 0:
            del self.data[:excess]
            self.truncated = True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # The group may already be gone, which is what we want.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


async def _stop_group(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM the whole group, give the leader `grace_s`, then SIGKILL the
    group: helpers that ignore SIGTERM must not outlive the command."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await _wait(proc, grace_s)
    finally:
        # Also on a second cancellation while waiting out the grace.
        _signal_group(proc.pid, signal.SIGKILL)
    # Bounded even so: a process stuck in the kernel must not hang the daemon;
    # asyncio's child watcher reaps the leader whenever it does exit.
    await _wait(proc, grace_s)


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        if exc.filename is not None:
            return f"{exc.strerror}: {exc.filename!r}"
        return exc.strerror
    return str(exc)


def _continuation_bytes(data: bytes) -> int:
    """How many UTF-8 continuation bytes (at most 3) `data` starts with."""
    count = 0
    while count < min(3, len(data)) and data[count] & 0xC0 == 0x80:
        count += 1
    return count


def _ms_since(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)


def _not_started(start: float, error: str) -> RestartOutcome:
    return RestartOutcome(
        exit_status=None,
        signal=None,
        timed_out=False,
        duration_ms=_ms_since(start),
        output_tail="",
        truncated=False,
        error=error,
    )


async def run_restart(
    argv: Sequence[str],
    *,
    provider: str,
    timeout_s: float,
    output_bytes: int,
    env: Mapping[str, str],
    grace_s: float = 5.0,
) -> RestartOutcome:
    """Run `argv` and report how it went. It does not raise for a command that
    cannot start or misbehaves; cancelling it kills the command's group and
    then propagates the cancellation."""
    start = time.monotonic()
    if not argv:
        return _not_started(start, "empty command")
    # A pipe of our own rather than PIPE: its read end is ours to close once
    # the leader has exited, whoever else still holds the write end.
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(env, provider),
        )
    except (OSError, ValueError) as exc:
        os.close(read_fd)
        return _not_started(start, _describe(exc))
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)

    tail = _Tail(output_bytes)
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    transport: asyncio.ReadTransport | None = None
    timed_out = False
    try:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(lambda: tail, pipe)
        if not await _wait(proc, timeout_s):
            timed_out = True
            await _stop_group(proc, grace_s)
        await asyncio.wait([tail.closed], timeout=DRAIN_S)
    finally:
        # Cancelled (or failed) while the command ran: stop it before leaving.
        try:
            if proc.returncode is None and not timed_out:
                await _stop_group(proc, grace_s)
        finally:
            if transport is None:
                pipe.close()
            else:
                transport.close()

    output = bytes(tail.data)
    if tail.truncated:
        # Trimming may have cut a UTF-8 character; start at the next whole one.
        output = output[_continuation_bytes(output) :]
    code = proc.returncode
    return RestartOutcome(
        exit_status=code if code is not None and code >= 0 and not timed_out else None,
        signal=-code if code is not None and code < 0 else None,
        timed_out=timed_out,
        output_tail=output.decode("utf-8", errors="replace"),
        truncated=tail.truncated,
        duration_ms=_ms_since(start),
    )
