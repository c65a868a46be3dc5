"""Run a provider's operator-configured `restart_command`, safely and within bounds.

When the daemon excludes a backend as unhealthy it may run a command such as
`["systemctl", "--user", "restart", "ollama"]` to bring it back. The command
comes from configuration, so this module treats it with care:

- It is an argv list run without a shell: nothing in it is quoted, expanded or
  split, so a provider name or argument cannot inject a second command.
- It runs in its own session (process group), so a timeout or the daemon's
  shutdown can stop every helper the command started, not just the leader:
  the group gets SIGTERM, and whatever of it still runs `grace_s` later
  gets SIGKILL.
- Its environment is scrubbed to `PASSED_ENV` plus `CODEROUTERD_PROVIDER`:
  the daemon holds upstream API keys that a restart script must never see.
- Its stdout and stderr go to a file (the provider's log, emptied at each
  run, never through a link), not to a pipe: a script that starts the server in the background
  (`nohup ollama serve &`) leaves the server writing to that output for as
  long as it runs. To a pipe that would mean waiting for an EOF that never
  comes, or closing the read end and killing the server with SIGPIPE at its
  next log line; a file takes its writes, and keeps them for the operator.
- It is finished when the leader exits; the group is then left alone so a
  server started in the background keeps running. Only the last
  `output_bytes` of the file are read, so a chatty command cannot grow the
  daemon's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
# How often a stopping group is checked for having exited.
_POLL_S = 0.05


def restart_log_dir(state_dir: Path) -> Path:
    """Where each provider's restart_command log lives: `<provider>.log` here."""
    return state_dir / "restart"


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
    """SIGTERM the whole group and give all of it `grace_s` to exit, then
    SIGKILL what is left: a helper that stops cleanly on SIGTERM gets its
    time, one that ignores SIGTERM does not outlive the command. A group
    gone early ends the wait at once."""
    _signal_group(proc.pid, signal.SIGTERM)
    gone = False
    try:
        gone = await _group_gone(proc.pid, grace_s)
    finally:
        # Also on a second cancellation while waiting out the grace. A group
        # seen gone is not signalled: its number may be anyone's by now.
        if not gone:
            _signal_group(proc.pid, signal.SIGKILL)
    # Bounded even so: a process stuck in the kernel must not hang the daemon;
    # asyncio's child watcher reaps the leader whenever it does exit.
    await _wait(proc, grace_s)


async def _group_gone(pgid: int, within_s: float) -> bool:
    """Whether every process of the group has exited within `within_s`."""
    deadline = time.monotonic() + within_s
    while _group_alive(pgid):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(_POLL_S, left))
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. One that has exited and
    waits to be reaped (a helper orphaned under an init that does not reap,
    as in many containers) is still in the group, but not running."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # None of them may be signalled: neither SIGKILL would reach them.
        return False
    return not _only_zombies(pgid)


def _only_zombies(pgid: int) -> bool:
    """Whether Linux's /proc shows the group, all of it exited and not yet
    reaped. Without /proc (macOS), or when it does not show the group (another
    PID namespace), the answer is no."""
    seen = False
    try:
        with os.scandir("/proc") as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/stat", "rb") as f:
                        stat_line = f.read()
                except OSError:
                    continue  # exited meanwhile
                # After the command name, which may hold spaces and ")":
                # state, ppid, pgrp.
                state, _, pgrp = stat_line.rsplit(b")", 1)[1].split()[:3]
                if int(pgrp) == pgid:
                    if state != b"Z" or _threads_run(entry.name):
                        return False
                    seen = True
    except OSError:
        return False
    return seen


def _threads_run(pid: str) -> bool:
    """Whether a process /proc shows as exited still has threads running:
    its main thread's exit alone makes it `Z` there."""
    try:
        with os.scandir(f"/proc/{pid}/task") as tasks:
            for task in tasks:
                try:
                    with open(f"/proc/{pid}/task/{task.name}/stat", "rb") as f:
                        if f.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                            return True
                except OSError:
                    continue  # that thread ended meanwhile
    except OSError:
        return False
    return False


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


def _open_log(path: Path | None) -> tuple[int, str]:
    """A descriptor to write the command's output to, and a note for the
    tail when its output will not be kept. Without a path (no state
    directory), an unnamed temporary file; when the log cannot be opened,
    /dev/null: a restart does not need its log."""
    try:
        if path is None:
            with tempfile.TemporaryFile() as unnamed:
                return os.dup(unnamed.fileno()), ""
        return _open_private(path), ""
    except OSError as exc:
        where = path or "a temporary file"
        note = f"(output not kept: cannot open {where}: {_describe(exc)})"
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC), note


def _open_private(path: Path) -> int:
    """`path`, emptied and 0600, in its directory made 0700. Whoever may write
    the state directory (another user's is left as is) could put a symbolic
    or hard link there to any file of the daemon's user, which would be
    emptied and overwritten: neither the directory nor the file is followed
    as a link, and a file that is not a plain one of its own is left as is."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    where = _open_unlinked(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):  # another user's directory is left as is
            os.fchmod(where, 0o700)
        # Not emptied on opening: only once known to be the log itself.
        # Read and write: the tail is read back from the same descriptor.
        fd = _open_unlinked(path.name, os.O_RDWR | os.O_CREAT | os.O_APPEND, dir_fd=where)
    finally:
        os.close(where)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise OSError(errno.EPERM, "not a plain file of its own (a pipe, a hard link...)")
        # A file left there by hand may be readable by others.
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
    except OSError:
        os.close(fd)
        raise
    return fd


def _open_unlinked(path: Path | str, flags: int, *, dir_fd: int | None = None) -> int:
    """os.open of `path` unless it is a symbolic link."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        # A link not followed is ELOOP; one opened as a directory is ENOTDIR on Linux.
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError(errno.ELOOP, "a symbolic link, not followed") from exc
        raise


def _tail(fd: int, limit: int) -> tuple[bytes, bool]:
    """The last `limit` bytes written to `fd` so far, and whether there were more."""
    size = os.fstat(fd).st_size
    start = max(size - limit, 0)
    data = os.pread(fd, size - start, start) if size > start else b""
    if start:
        # Trimming may have cut a UTF-8 character; start at the next whole one.
        data = data[_continuation_bytes(data) :]
    return data, start > 0


async def run_restart(
    argv: Sequence[str],
    *,
    provider: str,
    timeout_s: float,
    output_bytes: int,
    env: Mapping[str, str],
    log_path: Path | None = None,
    grace_s: float = 5.0,
) -> RestartOutcome:
    """Run `argv`, its output written to `log_path` (emptied first), and
    report how it went. It does not raise for a command that cannot start or
    misbehaves; cancelling it kills the command's group and then propagates
    the cancellation."""
    start = time.monotonic()
    if not argv:
        return _not_started(start, "empty command")
    out, note = _open_log(log_path)
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=child_env(env, provider),
            )
        except (OSError, ValueError) as exc:
            return _not_started(start, _describe(exc))
        timed_out = False
        try:
            if not await _wait(proc, timeout_s):
                timed_out = True
                await _stop_group(proc, grace_s)
        finally:
            # Cancelled (or failed) while the command ran: stop it before leaving.
            if proc.returncode is None and not timed_out:
                await _stop_group(proc, grace_s)
        output, truncated = _tail(out, output_bytes) if not note else (note.encode(), False)
    finally:
        os.close(out)
    code = proc.returncode
    return RestartOutcome(
        exit_status=code if code is not None and code >= 0 and not timed_out else None,
        signal=-code if code is not None and code < 0 else None,
        timed_out=timed_out,
        output_tail=output.decode("utf-8", errors="replace"),
        truncated=truncated,
        duration_ms=_ms_since(start),
    )
