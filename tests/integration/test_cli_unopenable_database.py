"""A state database path SQLite cannot open: one message, exit 1, and no
traceback of the connection's worker thread after it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.integration.process import child_env, run_cli

CONFIG = """\
server:
  state_dir: {root}/state
  control_socket: {root}/ctl.sock
providers:
  - name: a
    kind: anthropic
    base_url: http://127.0.0.1:9
    model: a-model
profiles:
  - name: default
    providers: [a]
"""

# Opens the database as the read-only commands do, several times (the
# thread's report races the loop's end), each in an event loop that ends
# on the error, as a command's does.
_OPEN_FAILING = """
import asyncio, sys
from pathlib import Path
from coderouterd.state.db import StateError, open_db

async def attempt() -> None:
    try:
        await open_db(Path(sys.argv[1]), readonly=True)
    except StateError as exc:
        print(exc)

for _ in range(50):
    asyncio.run(attempt())
"""


async def test_a_database_path_that_is_a_directory_gives_one_message(short_dir: Path) -> None:
    root = short_dir
    (root / "state" / "coderouterd.db").mkdir(parents=True)
    config = root / "config.yaml"
    config.write_text(CONFIG.format(root=root))
    for command in [["requests"], ["usage"], ["db", "status"], ["replay", "list"]] * 2:
        run = await run_cli(*command, "--config", str(config), env=child_env(root))
        assert run.returncode == 1
        assert run.stderr.startswith("coderouterd: "), run.stderr
        assert "is not a file" in run.stderr
        assert "Traceback" not in run.stderr, (command, run.stderr)


async def test_a_connection_sqlite_cannot_open_leaves_no_thread_behind(short_dir: Path) -> None:
    """The state package itself, under the check the commands make first:
    SQLite fails to open a directory ("disk I/O error")."""
    path = short_dir / "coderouterd.db"
    path.mkdir()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OPEN_FAILING, str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=child_env(short_dir),
    )  # fmt: skip
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().count(f"cannot open state database {path}") == 50, out.decode()
    assert err == b"", err.decode()[-800:]
