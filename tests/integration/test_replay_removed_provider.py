"""`coderouterd replay ID` of a request no provider answered goes where the
request log says it went, whatever the config has named since: to the
provider its model named alone (refused when that provider is gone), or
through its profile."""

from __future__ import annotations

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]
DEFAULT_A = "  - name: default\n    providers: [a]\n"


async def _failed_then_reloaded(
    d: ServeProcess, fake_upstream: FakeUpstream, model: str, config: str
) -> str:
    """A request for `model` that every provider failed; then the config
    becomes `config`, and providers answer again."""
    status, _, rid = await post(d.url, {"model": model, "max_tokens": 5, "messages": MESSAGES})
    assert status == 503
    await wait_committed(d, 2)
    d.write_config(config)
    reload = await run_cli("ctl", "reload", "--socket", str(d.socket_path), env=child_env(d.root))
    assert reload.returncode == 0, reload.stdout + reload.stderr
    fake_upstream.default = Reply(json=anthropic_message("answered"))
    return rid


async def test_a_replay_to_a_provider_the_config_no_longer_has_is_refused(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """`model: b` sent the request to provider b alone, which failed; the
    reload removed b. Sending the replay through the default profile would
    ask a, which the recorded request never touched."""
    fake_upstream.default = anthropic_error(503, "overloaded_error", "b is down")
    a = provider_yaml("a", fake_upstream.url)
    b = provider_yaml("b", fake_upstream.url)
    d = await serve_process(chain_yaml(a, b, profiles=DEFAULT_A))
    rid = await _failed_then_reloaded(d, fake_upstream, "b", chain_yaml(a, profiles=DEFAULT_A))
    assert [r.json["model"] for r in fake_upstream.requests] == ["b-model"]  # b alone
    run = await run_cli(
        "replay", rid, "--socket", str(d.socket_path), *cli_args(d), env=child_env(d.root)
    )
    assert run.returncode == 1, f"exit {run.returncode}: {run.stdout}"
    assert "went to provider 'b' alone, which the config no longer has" in run.stderr
    assert len(fake_upstream.requests) == 1  # nothing sent


async def test_a_replay_through_a_profile_stays_there_when_its_model_names_a_provider_since(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """`model: b` named no provider: the request went through the default
    profile, to a, which failed. The reload added a provider b; the replay
    still goes through the profile, to a."""
    fake_upstream.default = anthropic_error(503, "overloaded_error", "a is down")
    a = provider_yaml("a", fake_upstream.url)
    b = provider_yaml("b", fake_upstream.url)
    d = await serve_process(chain_yaml(a, profiles=DEFAULT_A))
    rid = await _failed_then_reloaded(d, fake_upstream, "b", chain_yaml(a, b, profiles=DEFAULT_A))
    assert [r.json["model"] for r in fake_upstream.requests] == ["a-model"]
    run = await run_cli(
        "replay", rid, "--socket", str(d.socket_path), *cli_args(d), env=child_env(d.root)
    )
    assert run.returncode == 0, run.stderr
    assert [r.json["model"] for r in fake_upstream.requests] == ["a-model", "a-model"]
