"""One daemon per state directory: an exclusive lock on a file beside the database.

Two daemons on one SQLite file would each load the exclusions against their
own config and keep their own head of the audit chain, undoing or refusing
each other's writes. `serve` takes the lock before it opens the database or
builds anything, and holds it until the database is closed.

flock(2) belongs to the open file: the kernel releases it when the process
ends, however it ends, so a lock file left behind never keeps a daemon from
starting. The file is never removed: a daemon could then lock the unlinked
file while another locks a new one at the same path. It holds the pid of
the daemon that has it, for the refusal of the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from coderouterd.state.db import StateError, db_path

_PID_BYTES = 32


def lock_path(state_dir: Path) -> Path:
    db = db_path(state_dir)
    return db.with_name(db.name + ".lock")


@contextlib.contextmanager
def single_instance(state_dir: Path) -> Iterator[Path]:
    """Hold the state directory's lock; StateError naming the holder's pid
    when another process holds it."""
    path = lock_path(state_dir)
    fd = _take(path)
    try:
        yield path
    finally:
        # Closing the last descriptor of the open file releases the lock.
        os.close(fd)


def _take(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise StateError(
            f"cannot serve the state directory {path.parent}: another coderouterd is "
            f"answering on it ({holder}, which holds {path.name})"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StateError(f"cannot lock {path}: {exc.strerror or exc}") from exc
    # A lock file copied in or left by another user's umask: not ours to fail on.
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    # The pid only names this daemon to the next one refused: not worth failing for.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, _PID_BYTES, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    # Empty while the holder is between taking the lock and writing its pid.
    return f"pid {text}" if text.isdigit() else "pid unknown"
