"""`coderouterd replay list`: --provider and --profile filter the list together."""

from __future__ import annotations

import msgspec

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def test_replay_list_filters_by_provider_and_profile_together(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    profiles = (
        "  - name: alpha\n    providers: [a]\n"
        "  - name: beta\n    providers: [a]\n"
        "  - name: gamma\n    providers: [b]\n"
    )
    d = await serve_process(
        chain_yaml(
            provider_yaml("a", fake_upstream.url),
            provider_yaml("b", fake_upstream.url),
            profiles=profiles,
        )
    )
    ids = {}
    for profile in ("alpha", "beta", "gamma"):
        _, _, ids[profile] = await post(d.url, BODY, **{"x-coderouter-profile": profile})
    await wait_committed(d, 6)
    env = child_env(d.root)

    async def listed(*filters: str) -> list[str]:
        run = await run_cli("replay", "list", *filters, "--json", *cli_args(d), env=env)
        assert run.returncode == 0, run.stderr
        return [r["request_id"] for r in msgspec.json.decode(run.stdout)]

    assert await listed("--provider", "a", "--profile", "alpha") == [ids["alpha"]]
    assert await listed("--profile", "gamma", "--provider", "a") == []
    assert await listed("--provider", "a") == [ids["beta"], ids["alpha"]]
