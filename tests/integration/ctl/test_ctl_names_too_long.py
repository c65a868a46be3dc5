"""`coderouterd ctl exclude|restore|probe NAME` with a name longer than any
provider's, too long for a request line: the answer for an unknown provider."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.integration.process import StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(30)


async def test_a_name_too_long_for_a_url_gets_the_no_such_provider_answer(
    serve_process: StartServe,
) -> None:
    d = await serve_process(
        chain_yaml(
            provider_yaml("a", "http://127.0.0.1:9"), provider_yaml("b", "http://127.0.0.1:9")
        )
    )
    sock, env = str(d.socket_path), child_env(d.root)
    # Over aiohttp's 8190-byte request line.
    name = "x" * 9000
    actions = ("exclude", "restore", "probe")
    runs = await asyncio.gather(
        *(run_cli("ctl", action, name, "--socket", sock, env=env) for action in actions)
    )
    for action, run in zip(actions, runs, strict=True):
        assert run.returncode == 1, (action, run.stderr)
        assert run.stderr == "", (action, run.stderr)
        assert run.stdout.strip() == f"{name}: no provider {name!r} (configured: a, b)", action
