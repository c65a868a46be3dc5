"""Directories and files only the daemon's user may open.

The state directory holds prompts (the request log, replays) and the
control socket. It may exist before the daemon first runs: the install
steps make it with `mkdir -p` under the user's umask (0755), and a mode
given to mkdir does nothing to a directory that is already there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Any permission of the group or of others.
_OTHERS = 0o077


def private_dir(path: Path, *, tighten: bool = True) -> str | None:
    """Create `path` (0700), or make the existing directory 0700 when
    `tighten` and this user owns it. Why others may still open it (its mode,
    its owner), or None when they may not. OSError when it cannot be made."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if not mode & _OTHERS:
        return None
    if not tighten:
        return f"mode {mode:04o}"
    if st.st_uid != os.geteuid():
        return f"mode {mode:04o}, owned by uid {st.st_uid}, not this user"
    try:
        os.chmod(path, mode & ~_OTHERS)
    except OSError as exc:
        return f"mode {mode:04o}, which cannot be changed ({exc.strerror or exc})"
    return None


def private_file(path: Path) -> None:
    """Make the file at `path` 0600-like (no permission for others) when this
    user owns it; nothing when it is missing, or someone else's."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode) and mode & _OTHERS and st.st_uid == os.geteuid():
        os.chmod(path, mode & ~_OTHERS)
