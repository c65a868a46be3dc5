"""A provider's `max_output_tokens` lowers a thinking budget with the
max_tokens it clamps on the OpenRouter path too: Anthropic behind OpenRouter
refuses a reasoning budget that is not below max_tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk


def openrouter(url: str, limit: int) -> str:
    return (
        "\n  - name: openrouter\n    kind: openai_compat\n"
        f"    base_url: {url}/v1\n    model: anthropic/claude-sonnet-4\n"
        f"    max_output_tokens: {limit}\n"
    )


def degraded(logs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each logged degradation's reason by its field ("field: reason")."""
    told = [d for e in logs if e["event"] == "capability.degraded" for d in e["dropped"]]
    return dict(d.split(": ", 1) for d in told)


async def ask(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, limit: int, budgets: list[int]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """What the provider was sent for Claude Code's max_tokens 32000 with each
    of the thinking `budgets`, and what was logged as degraded."""
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("the plan"))
    d = await start_daemon(chain_yaml(openrouter(fake_upstream.url, limit)))
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            for budget in budgets:
                answer = await client.messages.create(
                    model="claude-sonnet-4-5",
                    max_tokens=32000,
                    thinking={"type": "enabled", "budget_tokens": budget},
                    messages=[{"role": "user", "content": "plan the refactor"}],
                )
                assert answer.content[-1].text == "the plan"  # type: ignore[union-attr]
    return [r.json for r in fake_upstream.requests], degraded(logs)


async def test_claude_codes_budget_is_lowered_below_the_clamped_max_tokens(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    [high, low], notes = await ask(start_daemon, fake_upstream, 8192, [31999, 4096])
    assert high["max_tokens"] == 8192
    assert high["reasoning"] == {"max_tokens": 8191}
    assert "8191" in notes["thinking.budget_tokens"]
    assert "max_tokens" in notes
    # A budget that fits the clamped max_tokens goes as asked.
    assert low["reasoning"] == {"max_tokens": 4096}


async def test_reasoning_is_dropped_when_the_clamped_max_tokens_leaves_no_budget_anthropic_takes(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    [sent], notes = await ask(start_daemon, fake_upstream, 1024, [31999])
    assert sent["max_tokens"] == 1024
    assert "reasoning" not in sent
    assert "dropped" in notes["thinking"]
