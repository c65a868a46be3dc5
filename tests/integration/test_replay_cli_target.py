"""`coderouterd replay ID` to one provider alone goes to that provider of the
running daemon or nowhere: a provider only the config file has (not yet
loaded) is refused before anything is sent, and an answer the daemon routed
to another provider is refused rather than shown as that provider's."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.process import CliResult, ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]
TOO_LONG = "prompt is too long: 40000 tokens > 32768 maximum"
NOT_LOADED = (
    "; the config file has it, which the running coderouterd has not loaded: "
    "run `coderouterd ctl reload` first"
)


def _by_model(too_long: frozenset[str] = frozenset()) -> Callable[[Recorded], Reply]:
    def answer(req: Recorded) -> Reply:
        model = req.json["model"]
        if model in too_long:
            return anthropic_error(400, "invalid_request_error", TOO_LONG)
        return Reply(json=anthropic_message(f"answered by {model}"))

    return answer


async def _recorded(d: ServeProcess, model: str = "m") -> str:
    status, _, rid = await post(d.url, {"model": model, "max_tokens": 5, "messages": MESSAGES})
    assert status == 200
    await wait_committed(d, 2)
    return rid


async def _replay(d: ServeProcess, rid: str, *options: str) -> CliResult:
    return await run_cli(
        "replay", rid, *options, "--json", "--socket", str(d.socket_path), *cli_args(d),
        env=child_env(d.root),
    )  # fmt: skip


async def test_a_provider_only_the_config_file_has_is_refused_before_sending(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """b is added to the file, not reloaded: the daemon would send a body
    whose model names no provider of its own to the default profile, to a."""
    fake_upstream.responder = _by_model()
    a = provider_yaml("a", fake_upstream.url)
    d = await serve_process(chain_yaml(a))
    rid = await _recorded(d)
    d.write_config(chain_yaml(a, provider_yaml("b", fake_upstream.url)))
    run = await _replay(d, rid, "--provider", "b")
    assert run.returncode == 1, run.stdout
    [line] = run.stderr.splitlines()
    assert line == f"coderouterd: --provider 'b': no such provider (configured: a){NOT_LOADED}"
    assert len(fake_upstream.requests) == 1  # nothing sent


async def test_a_recorded_provider_the_running_daemon_lacks_is_refused_before_sending(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """`model: b` sent the request to b alone; a reload removed b, and the
    file has it again, not yet loaded."""
    fake_upstream.responder = _by_model()
    a, b = provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url)
    d = await serve_process(chain_yaml(a, b, profiles="  - name: default\n    providers: [a]\n"))
    rid = await _recorded(d, "b")
    assert fake_upstream.requests[-1].json["model"] == "b-model"
    d.write_config(chain_yaml(a))
    env = child_env(d.root)
    reload = await run_cli("ctl", "reload", "--socket", str(d.socket_path), env=env)
    assert reload.returncode == 0, reload.stdout + reload.stderr
    d.write_config(chain_yaml(a, b, profiles="  - name: default\n    providers: [a]\n"))
    run = await _replay(d, rid)
    assert run.returncode == 1, run.stdout
    [line] = run.stderr.splitlines()
    assert line.startswith(
        "coderouterd: the recorded request went to provider 'b' alone, which the config no longer has"
    ), line
    assert line.endswith(NOT_LOADED), line
    assert len(fake_upstream.requests) == 1


@pytest.mark.parametrize("a_refuses", [False, True], ids=["a-answers", "a-refuses"])
async def test_an_answer_the_daemon_routed_to_another_provider_is_not_shown_as_the_asked_ones(
    serve_process: StartServe, fake_upstream: FakeUpstream, a_refuses: bool
) -> None:
    """The running daemon has a profile b (through a) beside provider b; the
    file, not yet loaded, has no profile b. A body naming `b` goes through
    that profile: a answers (the provider header names it), or refuses the
    prompt as too long for it (no provider answered; the fallback path
    names a); either way not b."""
    a, b = provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url)
    profiles = "  - name: default\n    providers: [a]\n"
    d = await serve_process(
        chain_yaml(a, b, profiles=profiles + "  - name: b\n    providers: [a]\n")
    )
    fake_upstream.responder = _by_model()
    rid = await _recorded(d)
    fake_upstream.responder = _by_model(frozenset({"a-model"} if a_refuses else ()))
    d.write_config(chain_yaml(a, b, profiles=profiles))
    run = await _replay(d, rid, "--provider", "b")
    assert run.returncode == 1, run.stdout
    [line] = run.stderr.splitlines()
    assert line.startswith(
        "coderouterd: the replay sent to provider 'b' alone went to a: the running "
        "coderouterd routes it elsewhere"
    ), line
    assert [r.json["model"] for r in fake_upstream.requests] == ["a-model", "a-model"]


async def test_a_provider_the_running_daemon_has_answers_alone(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """The file, not yet loaded, has dropped b; the daemon still has it."""
    fake_upstream.responder = _by_model()
    a, b = provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url)
    d = await serve_process(chain_yaml(a, b))
    rid = await _recorded(d)
    d.write_config(chain_yaml(a))
    run = await _replay(d, rid, "--provider", "b")
    assert run.returncode == 0, run.stderr
    assert msgspec.json.decode(run.stdout)["response"]["text"] == "answered by b-model"
