"""`coderouterd replay ID` sends the request where the recorded one went, or
refuses before sending when the config no longer has that place."""

from __future__ import annotations

import sqlite3

import msgspec

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]


def _request_rows(d: ServeProcess) -> int:
    with sqlite3.connect(d.state_dir / "coderouterd.db") as db:
        [(rows,)] = db.execute("SELECT count(*) FROM requests").fetchall()
    return int(rows)


async def _replay(d: ServeProcess, rid: str, *options: str) -> dict:
    run = await run_cli(
        "replay", rid, "--json", *options, "--socket", str(d.socket_path), *cli_args(d),
        env=child_env(d.root),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    reply: dict = msgspec.json.decode(run.stdout)
    return reply


async def test_a_request_whose_model_named_a_provider_is_replayed_to_that_provider_alone(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """`model: b` routed the request to provider b alone, inside the default
    profile [a, b]; the row records that profile, but a replay through it
    would be answered by a."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    status, _, rid = await post(d.url, {"model": "b", "max_tokens": 5, "messages": MESSAGES})
    assert status == 200
    assert fake_upstream.requests[-1].json["model"] == "b-model"
    await wait_committed(d, 2)
    assert (await _replay(d, rid))["status"] == 200
    assert len(fake_upstream.requests) == 2
    assert fake_upstream.requests[-1].json["model"] == "b-model"


async def test_a_provider_named_under_a_chosen_profile_is_replayed_through_the_profile(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """The x-coderouter-profile header chose the profile: the model naming
    provider b did not route the request, and does not route the replay."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    profiles = "  - name: default\n    providers: [b]\n  - name: alpha\n    providers: [a, b]\n"
    d = await serve_process(
        chain_yaml(
            provider_yaml("a", fake_upstream.url),
            provider_yaml("b", fake_upstream.url),
            profiles=profiles,
        )
    )
    body = {"model": "b", "max_tokens": 5, "messages": MESSAGES}
    status, _, rid = await post(d.url, body, **{"x-coderouter-profile": "alpha"})
    assert status == 200
    assert fake_upstream.requests[-1].json["model"] == "a-model"
    await wait_committed(d, 2)
    assert (await _replay(d, rid))["status"] == 200
    assert fake_upstream.requests[-1].json["model"] == "a-model"


async def test_a_replay_whose_recorded_profile_is_gone_is_refused_before_sending(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """README: no such profile is exit 1, refused before anything is sent
    (no upstream request, no new request-log row)."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    a = provider_yaml("a", fake_upstream.url)
    d = await serve_process(chain_yaml(a, profiles="  - name: alpha\n    providers: [a]\n"))
    status, _, rid = await post(d.url, {"model": "m", "max_tokens": 5, "messages": MESSAGES})
    assert status == 200
    await wait_committed(d, 2)
    env = child_env(d.root)
    d.write_config(chain_yaml(a, profiles="  - name: main\n    providers: [a]\n"))
    reload = await run_cli("ctl", "reload", "--socket", str(d.socket_path), env=env)
    assert reload.returncode == 0, reload.stdout + reload.stderr
    sent, rows = len(fake_upstream.requests), _request_rows(d)
    run = await run_cli("replay", rid, "--socket", str(d.socket_path), *cli_args(d), env=env)
    assert run.returncode == 1, f"exit {run.returncode}: {run.stdout}"
    assert "'alpha'" in run.stderr and "main" in run.stderr, run.stderr
    assert len(fake_upstream.requests) == sent
    assert _request_rows(d) == rows
    # Another profile asked for by name still works.
    assert (await _replay(d, rid, "--profile", "main"))["status"] == 200


async def test_a_replay_to_a_provider_and_a_profile_at_once_is_a_usage_error(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    _, _, rid = await post(d.url, {"model": "m", "max_tokens": 5, "messages": MESSAGES})
    await wait_committed(d, 2)
    run = await run_cli(
        "replay", rid, "--provider", "a", "--profile", "default", *cli_args(d),
        env=child_env(d.root),
    )  # fmt: skip
    assert run.returncode == 2
    assert "not allowed with argument --provider" in run.stderr
    assert len(fake_upstream.requests) == 1
