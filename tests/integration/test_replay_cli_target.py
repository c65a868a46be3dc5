"""`coderouterd replay ID` checks its target (provider, profile, client key)
against the config file and has the running daemon route it: it is refused
before anything is sent unless the daemon runs that file as it is now, so a
replay to one provider alone goes to that provider or nowhere."""

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
NOT_LOADED = "`coderouterd ctl reload` to load it, or name the file the daemon runs with --config"


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


async def _reload(d: ServeProcess) -> None:
    run = await run_cli("ctl", "reload", "--socket", str(d.socket_path), env=child_env(d.root))
    assert run.returncode == 0, run.stdout + run.stderr


A, B = "a", "b"
DEFAULT = "  - name: default\n    providers: [a]\n"


def _edits(url: str) -> dict[str, tuple[str, str]]:
    """(running, file) configs that differ where a replay to `b` would go."""
    a, b = provider_yaml(A, url), provider_yaml(B, url)
    forwarding = provider_yaml(B, url, extra="forward_client_key: true\n")
    return {
        # b only in the file: the daemon would send a body naming no provider
        # of its own to the default profile, to a.
        "provider-added": (chain_yaml(a), chain_yaml(a, b)),
        # The daemon has a profile b (through a) the file lacks: a body
        # naming b would go through it, to a.
        "profile-dropped": (
            chain_yaml(a, b, profiles=DEFAULT + "  - name: b\n    providers: [a]\n"),
            chain_yaml(a, b, profiles=DEFAULT),
        ),
        # b forwards its clients' keys in the daemon, not in the file: the
        # replay would be sent without the key a client sends.
        "key-forwarding": (
            chain_yaml(a, forwarding, profiles=DEFAULT),
            chain_yaml(a, b, profiles=DEFAULT),
        ),
    }


@pytest.mark.parametrize("edit", ["provider-added", "profile-dropped", "key-forwarding"])
async def test_a_config_file_the_daemon_has_not_loaded_is_refused_before_sending(
    serve_process: StartServe, fake_upstream: FakeUpstream, edit: str
) -> None:
    fake_upstream.responder = _by_model()
    running, edited = _edits(fake_upstream.url)[edit]
    d = await serve_process(running)
    rid = await _recorded(d)
    d.write_config(edited)
    run = await _replay(d, rid, "--provider", B)
    assert run.returncode == 1, run.stdout
    [line] = run.stderr.splitlines()
    assert line.startswith("coderouterd: the running coderouterd's config (sha256:"), line
    assert line.endswith(NOT_LOADED), line
    assert len(fake_upstream.requests) == 1  # the recorded request; nothing sent since


async def test_once_reloaded_the_provider_added_answers_the_replay_alone(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = _by_model()
    running, edited = _edits(fake_upstream.url)["provider-added"]
    d = await serve_process(running)
    rid = await _recorded(d)
    d.write_config(edited)
    await _reload(d)
    run = await _replay(d, rid, "--provider", B)
    assert run.returncode == 0, run.stderr
    assert msgspec.json.decode(run.stdout)["response"]["text"] == "answered by b-model"
    assert [r.json["model"] for r in fake_upstream.requests] == ["a-model", "b-model"]


async def test_a_recorded_provider_the_config_no_longer_has_is_refused_before_sending(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """`model: b` sent the request to b alone; a reload removed b."""
    fake_upstream.responder = _by_model()
    a, b = provider_yaml(A, fake_upstream.url), provider_yaml(B, fake_upstream.url)
    d = await serve_process(chain_yaml(a, b, profiles=DEFAULT))
    rid = await _recorded(d, B)
    assert fake_upstream.requests[-1].json["model"] == "b-model"
    d.write_config(chain_yaml(a))
    await _reload(d)
    run = await _replay(d, rid)
    assert run.returncode == 1, run.stdout
    [line] = run.stderr.splitlines()
    assert line.startswith(
        "coderouterd: the recorded request went to provider 'b' alone, which the config no longer has"
    ), line
    assert len(fake_upstream.requests) == 1
