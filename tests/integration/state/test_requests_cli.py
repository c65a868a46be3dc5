"""`coderouterd requests` and `coderouterd usage`: the request log of a real daemon,
read through the real command line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.process import StartServe, child_env, run_cli
from tests.integration.state.test_state_process import BODY, cli_args, post, wait_committed

PROFILES = """\
  - name: default
    providers: [down, up]
  - name: only-down
    providers: [down]
"""
PRICED = """\
cost:
  input_tokens_per_million: 3
  output_tokens_per_million: 15
"""


async def test_requests_and_usage_show_what_each_request_did_and_cost(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    def choose(req: Recorded) -> Reply:
        if (req.json or {}).get("model") == "down-model":
            return anthropic_error(500, "api_error", "backend crashed")
        return Reply(json=anthropic_message("hi", input_tokens=1000, output_tokens=200))

    fake_upstream.responder = choose
    d = await serve_process(
        chain_yaml(
            provider_yaml("down", fake_upstream.url),
            provider_yaml("up", fake_upstream.url, extra=PRICED),
            profiles=PROFILES,
        )
    )
    status, _, answered = await post(d.url, BODY)
    assert status == 200
    status, _, failed = await post(d.url, {**BODY, "model": "only-down"})
    assert status == 503
    await wait_committed(d, 2)
    env = child_env(d.root)

    async def cli(*args: str) -> tuple[int, str, str]:
        run = await run_cli(*args, *cli_args(d), env=env)
        return run.returncode, run.stdout, run.stderr

    await listed(cli, answered, failed)
    await shown_whole(cli, answered)
    await totalled(cli)


Cli = Callable[..., Awaitable[tuple[int, str, str]]]


async def listed(cli: Cli, answered: str, failed: str) -> None:
    """The list, newest first, each with the providers it went through."""
    code, out, err = await cli("requests", "--json")
    assert code == 0, err
    rows = msgspec.json.decode(out)
    assert [r["id"] for r in rows] == [failed, answered]
    assert [(r["profile"], r["provider"], r["status"]) for r in rows] == [
        ("only-down", None, 503),
        ("default", "up", 200),
    ]
    assert [a["provider"] for a in rows[1]["attempts"]] == ["down", "up"]
    code, out, _ = await cli("requests")
    head, first, second = out.splitlines()
    assert head.split()[:3] == ["ID", "TIME", "(UTC)"]
    assert first.startswith(failed) and "only-down" in first
    assert second.startswith(answered) and second.endswith("down (http_500) > up")
    assert "1000/200" in second and "$0.0060" in second
    code, out, _ = await cli("requests", "--failed", "--json")
    assert [r["id"] for r in msgspec.json.decode(out)] == [failed]
    code, out, _ = await cli("requests", "--profile", "default", "--provider", "up", "--json")
    assert [r["id"] for r in msgspec.json.decode(out)] == [answered]


async def shown_whole(cli: Cli, answered: str) -> None:
    code, out, err = await cli("requests", answered)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"request {answered}"
    assert "  provider   up" in lines
    assert "  usage      in 1000, out 200, cache read 0, cache write 0" in lines
    assert "    1. down, failed, http_500, status 500" in "\n".join(lines)
    assert any(line.startswith("    2. up, ok, status 200") for line in lines)
    assert lines[-1] == f"  replay     coderouterd replay {answered}"
    code, out, _ = await cli("requests", answered, "--json")
    assert msgspec.json.decode(out)["replay_recorded"] is True
    code, out, err = await cli("requests", "req-that-never-was")
    assert (code, out) == (1, "")
    assert "no request 'req-that-never-was' in the request log" in err


async def totalled(cli: Cli) -> None:
    """Usage by provider (the failed request was answered by none), and by day."""
    code, out, err = await cli("usage", "--json")
    assert code == 0, err
    groups = {g["key"]: g for g in msgspec.json.decode(out)}
    assert groups["up"]["requests"] == 1 and groups["up"]["failed"] == 0
    assert (groups["up"]["input_tokens"], groups["up"]["output_tokens"]) == (1000, 200)
    assert abs(groups["up"]["cost_usd"] - 0.006) < 1e-9
    assert (groups["-"]["requests"], groups["-"]["failed"]) == (1, 1)
    code, out, _ = await cli("usage", "--by", "day", "--since", "1h")
    day, total = out.splitlines()[1:]
    assert day.split()[1:3] == ["2", "1"]
    assert total.split()[:3] == ["total", "2", "1"]
    code, _, err = await cli("usage", "--by", "colour")
    assert code == 2 and "invalid choice: 'colour'" in err
