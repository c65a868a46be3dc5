"""A coderouterd daemon from the outside: what the runner asks it (`ctl status`,
the rows of its database), and the environment every child of the bench gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import Ctx
from procs import Proc


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CODEROUTERD_", "MALLOC_"))
        and k not in ("NOTIFY_SOCKET", "PYTHONPATH")
    }
    env.update(extra or {})
    return env


# The editable install's import hook serves any `coderouterd.*` module that an
# export (--rev, --baseline) lacks from the working tree, even with PYTHONPATH
# set: a daemon would mix two versions. Run from an export, the bench drops that
# hook first, so the daemon runs the export's code or fails to import.
EXPORT_MAIN = (
    "import runpy, sys; "
    "ours = lambda x: not str(getattr(x, '__module__', x)).startswith('__editable__'); "
    "sys.meta_path[:] = filter(ours, sys.meta_path); "
    "sys.path_hooks[:] = filter(ours, sys.path_hooks); "
    "sys.path[:] = filter(ours, sys.path); "
    "sys.path_importer_cache.clear(); "
    "runpy.run_module('coderouterd.cli', run_name='__main__', alter_sys=True)"
)


def crd_argv(pythonpath: str | None, *args: str) -> list[str]:
    """argv of `coderouterd <args>`, with the code of the working tree or of an export."""
    if pythonpath:
        return [sys.executable, "-c", EXPORT_MAIN, *args]
    return [sys.executable, "-m", "coderouterd.cli", *args]


def crd_env(proc: Proc) -> dict[str, str]:
    """The environment of a `ctl` call to a daemon: the daemon's own PYTHONPATH, so
    that the call runs the same code (an export of --rev or --baseline)."""
    path = proc.extra.get("pythonpath")
    return child_env({"PYTHONPATH": path} if path else None)


def crd_status(ctx: Ctx, proc: Proc) -> dict[str, Any] | None:
    """`coderouterd ctl status --json` of the daemon `proc`, run with the daemon's own
    code, or None when it fails."""
    sock = ctx.workdir / f"{proc.name}.sock"
    r = subprocess.run(
        crd_argv(proc.extra.get("pythonpath"), "ctl", "status", "--json", "--socket", str(sock)),
        capture_output=True,
        timeout=10,
        check=False,
        env=crd_env(proc),
        cwd=ctx.workdir,
    )
    if r.returncode != 0:
        return None
    status: dict[str, Any] = json.loads(r.stdout)
    return status


def crd_inflight(ctx: Ctx, proc: Proc) -> int | None:
    status = crd_status(ctx, proc)
    return None if status is None else len(status.get("in_flight", []))


def _replay_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    """What the replay records hold on disk: their own blobs, the pieces
    (their packs included), how many records were stored uncompressed (a
    recorder behind) and how many as what their body adds to the
    conversation's last (body_format 2)."""
    own, raw, delta = conn.execute(
        "SELECT coalesce(sum(length(request_body) + coalesce(length(response_body), 0)), 0),"
        " count(CASE WHEN substr(request_body, 1, 1) = x'00' THEN 1 END),"
        " count(CASE WHEN body_format = 2 THEN 1 END) FROM replays"
    ).fetchone()
    (shared,) = conn.execute("SELECT coalesce(sum(length(data)), 0) FROM replay_pieces").fetchone()
    # A baseline from before packs existed has no such table.
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'replay_packs'").fetchone():
        (packed,) = conn.execute(
            "SELECT coalesce(sum(length(data)), 0) FROM replay_packs"
        ).fetchone()
        shared += packed
    return {
        "replay_bytes": int(own),
        "piece_bytes": int(shared),
        "replays_uncompressed": int(raw),
        "replays_delta": int(delta),
    }


def crd_rows(ctx: Ctx, proc: Proc) -> dict[str, Any]:
    """Rows in the daemon's database (opened read-only) and its writer's counters.

    Waits until the counts stop moving: the writer commits in batches, and a
    daemon that records replays compresses them in a worker thread first.
    """
    state = Path(proc.extra["state_dir"])
    db = state / "coderouterd.db"
    out: dict[str, Any] = {"state_dir": str(state), "db": str(db)}
    if not db.exists():
        out["error"] = f"no database in {state}"
        return out
    counts: dict[str, int] = {}
    end = time.monotonic() + 5
    while True:
        try:
            with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
                now = {
                    table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - fixed names
                    for table in ("requests", "replays")
                }
        except sqlite3.Error as exc:
            out["error"] = f"{db}: {exc}"
            return out
        if now == counts or time.monotonic() > end:
            break
        counts = now
        time.sleep(0.3)
    out.update(now)
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
            out.update(_replay_bytes(conn))
    except sqlite3.Error as exc:
        out["error"] = f"{db}: {exc}"
        return out
    status = crd_status(ctx, proc)
    st = (status or {}).get("state") or {}
    out["daemon_db"] = st.get("path")
    if st.get("path") and Path(st["path"]).resolve() != db.resolve():
        out["error"] = f"the daemon reports its database at {st['path']}, not {db}"
    for key in ("dropped", "failed_rows", "replays_dropped", "replays_too_large"):
        out[key] = st.get(key)
    return out
