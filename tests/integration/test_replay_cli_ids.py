"""`coderouterd replay --id=ID` replays any request id a client may choose
(x-request-id), `list` and one starting with `-` too, which the positional
cannot take; `coderouterd requests ID` prints that form for them."""

from __future__ import annotations

import msgspec
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("rid", ["list", "-retry-1"])
async def test_the_replay_command_requests_prints_replays_an_id_the_positional_cannot_take(
    serve_process: StartServe, fake_upstream: FakeUpstream, rid: str
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, _, kept = await post(d.url, BODY, **{"x-request-id": rid})
    assert status == 200 and kept == rid
    await wait_committed(d, 2)
    env = child_env(d.root)
    shown = await run_cli("requests", *cli_args(d), "--", rid, env=env)
    assert shown.returncode == 0, shown.stderr
    hint = shown.stdout.splitlines()[-1]
    assert hint == f"  replay     coderouterd replay --id={rid}"
    command = hint.split()[2:]  # after "replay" and "coderouterd"
    run = await run_cli(*command, "--json", "--socket", str(d.socket_path), *cli_args(d), env=env)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr}"
    reply = msgspec.json.decode(run.stdout)
    # A replay's answer (not the list), and the upstream asked again.
    assert isinstance(reply, dict) and reply["status"] == 200, reply
    assert len(fake_upstream.requests) == 2


async def test_an_id_given_both_ways_is_a_usage_error(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    _, _, rid = await post(d.url, BODY)
    await wait_committed(d, 2)
    env = child_env(d.root)
    both = await run_cli("replay", rid, f"--id={rid}", *cli_args(d), env=env)
    assert both.returncode == 2, both.stderr
    assert "argument --id: not allowed with a request id" in both.stderr
    neither = await run_cli("replay", *cli_args(d), env=env)
    assert neither.returncode == 2, neither.stderr
    assert "required: request_id (or --id)" in neither.stderr
    assert len(fake_upstream.requests) == 1
