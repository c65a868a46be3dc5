"""Install the real Claude Code CLI from npm, once per machine, for end-to-end tests.

The version is pinned so a test run is reproducible; the install lands in
tests/e2e/.cache (git-ignored) and is reused by later runs. The npm package
ships its native binary in a per-platform optional dependency; its
postinstall step may be skipped by npm's script policy, so the CLI is run
through the package's own `cli-wrapper.cjs`, which finds that binary itself.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CLAUDE_CODE_VERSION = "2.1.197"
_CACHE = Path(__file__).parent / ".cache" / f"claude-code-{CLAUDE_CODE_VERSION}"
_WRAPPER = _CACHE / "node_modules" / "@anthropic-ai" / "claude-code" / "cli-wrapper.cjs"
_INSTALL_TIMEOUT_S = 600


def install_claude_code() -> list[str]:
    """The argv prefix that runs Claude Code, installing it first if needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("the end-to-end tests need node and npm on PATH")
    _CACHE.mkdir(parents=True, exist_ok=True)
    # One install at a time: test processes run side by side (pytest-xdist),
    # and two npm installs into one prefix would corrupt it.
    with (_CACHE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _WRAPPER.exists():
            # A fixed argv with npm as found on PATH; no shell.
            subprocess.run(  # noqa: S603
                [
                    npm,
                    "install",
                    "--prefix",
                    str(_CACHE),
                    "--no-audit",
                    "--no-fund",
                    f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}",
                ],
                check=True,
                timeout=_INSTALL_TIMEOUT_S,
                stdout=subprocess.DEVNULL,
            )
    return [node, str(_WRAPPER)]


def claude_env(home: Path, base_url: str) -> dict[str, str]:
    """An environment that points Claude Code at the daemon and nowhere else."""
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY="sk-e2e-not-a-real-key",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
    )
    return env
