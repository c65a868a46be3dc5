"""`coderouterd ctl exclude|restore|probe NAME` with names no provider can have:
the answer for an unknown provider, whatever the name does to a URL path."""

from __future__ import annotations

import signal

import msgspec
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.integration.process import StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(30)

# `..` and `.` are resolved away in a URL path, "" leaves no segment at all;
# `/`, `%` and `?` make names no provider can have.
NAMES = ["..", ".", "", "a/..", "%2E%2E", "a?b"]


async def test_a_name_that_is_no_provider_gets_the_no_such_provider_answer(
    serve_process: StartServe,
) -> None:
    d = await serve_process(
        chain_yaml(
            provider_yaml("a", "http://127.0.0.1:9"), provider_yaml("b", "http://127.0.0.1:9")
        )
    )
    sock, env = str(d.socket_path), child_env(d.root)
    # The actions share the way a name is sent: each of them for two names,
    # exclude alone for the rest.
    asked = [(action, name) for action in ("exclude", "restore", "probe") for name in ("..", "")]
    asked += [("exclude", name) for name in NAMES if name not in ("..", "")]
    # One at a time: ten interpreters starting at once on a loaded machine
    # could each outlast run_cli's timeout.
    for action, name in asked:
        run = await run_cli("ctl", action, name, "--socket", sock, env=env)
        assert run.returncode == 1, (action, name, run.stdout + run.stderr)
        assert run.stderr == "", (action, name, run.stderr)
        assert run.stdout.strip() == f"{name}: no provider {name!r} (configured: a, b)"
    as_json = await run_cli("ctl", "exclude", "..", "--json", "--socket", sock, env=env)
    reply = msgspec.json.decode(as_json.stdout)
    assert (reply["ok"], reply["provider"], reply["action"]) == (False, "..", "exclude")
    # Nothing was taken out along the way.
    status = await run_cli("ctl", "status", "--json", "--socket", sock, env=env)
    providers = msgspec.json.decode(status.stdout)["providers"]
    assert [p["healing"]["excluded"] for p in providers] == [False, False]

    # A name answered without a request is still answered by a running daemon only.
    d.send_signal(signal.SIGTERM)
    assert await d.wait() == 0
    stopped = await run_cli("ctl", "exclude", "..", "--socket", sock, env=env)
    assert stopped.returncode == 1
    assert stopped.stdout == ""
    assert f"coderouterd is not running (no control socket at {sock})" in stopped.stderr
