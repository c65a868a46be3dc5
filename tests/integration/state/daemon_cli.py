"""The real command line (`requests`, `usage`, `replay list`) run on the state
directory of a daemon running in-process, once what it was handed is committed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import RunningDaemon
from tests.integration.process import child_env, run_cli


def cli_config(d: RunningDaemon, root: Path) -> Path:
    """A config file naming the daemon's state directory, for the CLI."""
    path = root / "cli-config.yaml"
    state_dir = d.state.path.parent
    path.write_text(
        f"server:\n  state_dir: {json.dumps(str(state_dir))}\n{d.config_path.read_text()}"
    )
    return path


async def cli(d: RunningDaemon, root: Path, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `coderouterd ARGS` on the daemon's database."""
    await d.state.replays.drain()
    await d.state.writer.flush()
    run = await run_cli(*args, "--config", str(cli_config(d, root)), env=child_env(root))
    return run.returncode, run.stdout, run.stderr


async def cli_json(d: RunningDaemon, root: Path, *args: str) -> Any:
    code, out, err = await cli(d, root, *args, "--json")
    assert code == 0, err
    return json.loads(out)
