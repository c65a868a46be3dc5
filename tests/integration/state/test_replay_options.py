"""What is recorded for replay and where `coderouterd replay` sends it: opt-outs,
the recorded profile or another one, and the OpenAI dialect."""

from __future__ import annotations

import sqlite3

import aiohttp
import anthropic
import msgspec
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]
TWO_PROFILES = """  - name: alpha
    providers: [a]
  - name: beta
    providers: [b]
    record_replays: false
default_profile: beta
"""


def two_profiles(url: str, top: str = "") -> str:
    return chain_yaml(
        provider_yaml("a", url), provider_yaml("b", url), profiles=TWO_PROFILES, top=top
    )


async def ask(url: str, profile: str) -> str:
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(
            model="m",
            max_tokens=5,
            messages=MESSAGES,
            extra_headers={"x-coderouter-mode": profile},
        )
        return raw.headers["x-request-id"]


@pytest.mark.parametrize(
    ("top", "recorded"),
    [("", {"alpha"}), ("state:\n  replay:\n    enabled: false\n", set())],
    ids=["profile-opts-out", "replay-disabled"],
)
async def test_requests_not_recorded_for_replay_still_get_their_row(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, top: str, recorded: set[str]
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(two_profiles(fake_upstream.url, top))
    ids = {profile: await ask(d.url, profile) for profile in ("alpha", "beta")}
    # Closing writes everything queued, replay records included.
    await d.runner.cleanup()
    await d.state.close()
    with sqlite3.connect(d.state.path) as db:
        rows = dict(db.execute("SELECT profile, id FROM requests").fetchall())
        replays = {r[0] for r in db.execute("SELECT profile FROM replays")}
    assert rows == ids
    assert replays == recorded


async def test_replay_goes_through_the_recorded_profile_unless_told_another(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(two_profiles(fake_upstream.url))
    status, _, rid = await post(d.url, {"model": "m", "max_tokens": 5, "messages": MESSAGES},
                                **{"x-coderouter-mode": "alpha"})  # fmt: skip
    assert status == 200
    await wait_committed(d, 2)
    env = child_env(d.root)
    socket = ["--socket", str(d.socket_path)]
    # beta is the default profile: a replay that lost the recorded one would go to b.
    run = await run_cli("replay", rid, "--json", *socket, *cli_args(d), env=env)
    assert run.returncode == 0, run.stderr
    assert fake_upstream.requests[-1].json["model"] == "a-model"
    run = await run_cli("replay", rid, "--profile", "beta", "--json", *socket, *cli_args(d),
                        env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert msgspec.json.decode(run.stdout)["status"] == 200
    assert fake_upstream.requests[-1].json["model"] == "b-model"
    assert len(fake_upstream.requests) == 3


async def test_an_openai_stream_replays_with_diff(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=openai_text_stream(["first ", "answer"]), dialect="openai"),
        Reply(events=openai_text_stream(["second answer"], completion_tokens=9), dialect="openai"),
    )
    d = await serve_process(chain_yaml(provider_yaml("o", fake_upstream.url, kind="openai_compat")))
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        await resp.read()
        rid = resp.headers["x-request-id"]
    await wait_committed(d, 2)
    env = child_env(d.root)
    listing = await run_cli("replay", "list", "--json", *cli_args(d), env=env)
    [listed] = msgspec.json.decode(listing.stdout)
    assert (listed["request_id"], listed["dialect"], listed["stream"]) == (rid, "openai", True)
    for profile, found in (("default", [rid]), ("other", [])):
        listing = await run_cli(
            "replay", "list", "--profile", profile, "--json", *cli_args(d), env=env
        )
        assert [r["request_id"] for r in msgspec.json.decode(listing.stdout)] == found
    run = await run_cli(
        "replay", rid, "--diff", "--json", "--socket", str(d.socket_path), *cli_args(d), env=env
    )
    assert run.returncode == 0, run.stderr
    reply = msgspec.json.decode(run.stdout)
    assert reply["status"] == 200 and reply["response"]["text"] == "second answer"
    changes = {c["field"]: (c["before"], c["after"]) for c in reply["changes"]}
    assert changes["text"] == ("first answer", "second answer")
    assert changes["usage.output_tokens"] == (5, 9)
    assert "stop_reason" not in changes
    # The replay reached the provider as a stream, in the client's dialect.
    sent = fake_upstream.requests[-1]
    assert sent.path.endswith("/chat/completions") and sent.json["stream"] is True


async def test_replay_refuses_a_target_the_daemon_would_route_elsewhere(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    # A model naming no provider goes to the default profile, one naming a
    # profile (`b` is both here) through that profile: neither is "to one
    # provider alone". An unknown profile the daemon would refuse only once sent.
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    profiles = "  - name: alpha\n    providers: [a, b]\n  - name: b\n    providers: [b]\n"
    d = await serve_process(
        chain_yaml(
            provider_yaml("a", fake_upstream.url),
            provider_yaml("b", fake_upstream.url),
            profiles=profiles,
        )
    )
    status, _, rid = await post(d.url, {"model": "m", "max_tokens": 5, "messages": MESSAGES})
    assert status == 200
    await wait_committed(d, 2)
    env = child_env(d.root)
    sent = len(fake_upstream.requests)
    for target, says in (
        (["--provider", "nope"], "--provider 'nope': no such provider (configured: a, b)"),
        (["--provider", "alpha"], "--provider 'alpha': no such provider (configured: a, b)"),
        (["--provider", "b"], "--provider 'b': a profile has that name too"),
        (["--profile", "nope"], "--profile 'nope': no such profile (configured: alpha, b)"),
    ):
        run = await run_cli("replay", rid, *target, *cli_args(d), env=env)
        assert run.returncode == 1, (target, run.stdout + run.stderr)
        assert run.stderr.startswith(f"coderouterd: {says}"), (target, run.stderr)
    assert len(fake_upstream.requests) == sent
    run = await run_cli("replay", rid, "--provider", "a", "--json", *cli_args(d), env=env)
    assert run.returncode == 0, run.stderr
    assert fake_upstream.requests[-1].json["model"] == "a-model"
