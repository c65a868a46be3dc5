"""`coderouterd replay` to a provider that forwards its clients' keys: the
record keeps no credential, so the replay sends the key a client on this
machine would send, as `doctor` does, or is refused before sending."""

from __future__ import annotations

import msgspec

from coderouterd.client_key import CLIENT_KEYS
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import (
    CLIENT_KEY,
    UPSTREAM_KEY,
    cli_args,
    post,
    wait_committed,
)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
FORWARDS = "forward_client_key: true"


def _env(d: ServeProcess, **keys: str) -> dict[str, str]:
    """The CLI's environment with exactly these client keys."""
    env = child_env(d.root)
    for name, _, _ in CLIENT_KEYS:
        env.pop(name, None)
    return {**env, **keys}


def _checks_key(fake_upstream: FakeUpstream, header: str, value: str) -> None:
    def answer(req: Recorded) -> Reply:
        if req.headers.get(header) != value:
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        return Reply(json=anthropic_message("ok"))

    fake_upstream.responder = answer


async def _rejected(d: ServeProcess) -> bool:
    run = await run_cli("ctl", "status", "--json", "--socket", str(d.socket_path), env=_env(d))
    [provider] = msgspec.json.decode(run.stdout)["providers"]
    return bool(provider["auth_rejected"])


async def test_a_replay_to_a_forward_client_key_provider_sends_the_clients_key(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    _checks_key(fake_upstream, "x-api-key", CLIENT_KEY)
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url, extra=FORWARDS)))
    status, _, rid = await post(d.url, BODY)
    assert status == 200
    await wait_committed(d, 2)
    run = await run_cli(
        "replay", rid, "--json", "--socket", str(d.socket_path), *cli_args(d),
        env=_env(d, ANTHROPIC_API_KEY=CLIENT_KEY),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    reply = msgspec.json.decode(run.stdout)
    assert reply["status"] == 200, reply["response"]["error"]
    assert fake_upstream.requests[-1].headers["x-api-key"] == CLIENT_KEY
    assert not await _rejected(d)


async def test_a_bearer_token_is_sent_as_a_client_would(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    _checks_key(fake_upstream, "authorization", f"Bearer {CLIENT_KEY}")
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url, extra=FORWARDS)))
    _, _, rid = await post(d.url, BODY, authorization=f"Bearer {CLIENT_KEY}")
    await wait_committed(d, 2)
    run = await run_cli(
        "replay", rid, "--json", "--socket", str(d.socket_path), *cli_args(d),
        env=_env(d, ANTHROPIC_AUTH_TOKEN=CLIENT_KEY),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert msgspec.json.decode(run.stdout)["status"] == 200
    assert not await _rejected(d)


async def test_a_replay_with_no_client_key_to_send_is_refused_before_sending(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    _checks_key(fake_upstream, "x-api-key", CLIENT_KEY)
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url, extra=FORWARDS)))
    _, _, rid = await post(d.url, BODY)
    await wait_committed(d, 2)
    for options in ([], ["--provider", "a"], ["--profile", "default"]):
        run = await run_cli(
            "replay", rid, *options, "--socket", str(d.socket_path), *cli_args(d), env=_env(d)
        )
        assert run.returncode == 1, (options, run.stdout)
        assert "forward_client_key" in run.stderr and "ANTHROPIC_API_KEY" in run.stderr
    assert len(fake_upstream.requests) == 1
    assert not await _rejected(d)


async def test_a_provider_with_its_own_key_needs_no_client_key(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    _checks_key(fake_upstream, "x-api-key", UPSTREAM_KEY)
    own = f"{FORWARDS}\napi_key_env: UPSTREAM_KEY"
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url, extra=own)),
        env={"UPSTREAM_KEY": UPSTREAM_KEY},
    )
    _, _, rid = await post(d.url, BODY)
    await wait_committed(d, 2)
    run = await run_cli(
        "replay", rid, "--json", "--socket", str(d.socket_path), *cli_args(d), env=_env(d)
    )
    assert run.returncode == 0, run.stderr
    assert msgspec.json.decode(run.stdout)["status"] == 200
