"""The commands that read the database or check a file start without the
daemon or the HTTP client: run often (scripts, status bars), they should not
pay a third of a second to import what they never use."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("aiohttp", "coderouterd.app", "coderouterd.daemon", "coderouterd.doctor")


def test_the_command_line_imports_no_daemon_and_no_http_client() -> None:
    probe = (
        f"import sys, coderouterd.cli\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    run = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.split() == []
