"""`coderouterd ctl probe` of a backend answering JSON nested deeper than the
decoder goes: the probe failed as `not_json`, the command says so."""

from __future__ import annotations

import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(60)

# A little over 2 KB, nested 1000 levels deep: msgspec gives up on it with
# RecursionError, not DecodeError.
_DEEP = b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"


async def test_ctl_probe_of_a_backend_answering_deeply_nested_json_says_not_json(
    serve_process: StartServe,
) -> None:
    reply = Reply(raw_body=_DEEP, headers={"content-type": "application/json"})
    async with FakeUpstream(default=reply) as a:
        d = await serve_process(chain_yaml(provider_yaml("a", a.url)))
        run = await run_cli(
            "ctl", "probe", "a", "--socket", str(d.socket_path), env=child_env(d.root), timeout=30
        )
    assert run.stderr == "", run.stderr
    assert run.returncode == 0, run.stdout
    assert run.stdout.startswith("a: failed after"), run.stdout
    assert run.stdout.rstrip().endswith(" ms: not_json (status 200)"), run.stdout
