"""An OpenAI client's OpenRouter `reasoning: {max_tokens}` is lowered with the
max_tokens (or max_completion_tokens) that a provider's `max_output_tokens`
clamps on the bytes-through path: Anthropic behind OpenRouter refuses a
reasoning budget that is not below max_tokens."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import o_sdk
from tests.integration.test_openrouter_reasoning_clamp import degraded, openrouter


async def ask(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, limit: int, asks: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """What the provider was sent for each of the `asks` (extra body fields of a
    chat completion), and what was logged as degraded."""
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("the plan"))
    d = await start_daemon(chain_yaml(openrouter(fake_upstream.url, limit)))
    with capture_logs() as logs:
        async with o_sdk(d.url) as client:
            for extra in asks:
                answer = await client.chat.completions.create(
                    model="anthropic/claude-sonnet-4",
                    messages=[{"role": "user", "content": "plan the refactor"}],
                    extra_body=extra,
                )
                assert answer.choices[0].message.content == "the plan"
    return [r.json for r in fake_upstream.requests], degraded(logs)


async def test_a_reasoning_budget_is_lowered_below_the_clamped_max_tokens(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    over = {"max_tokens": 32000, "reasoning": {"max_tokens": 31999, "exclude": True}}
    fits = {"max_tokens": 32000, "reasoning": {"max_tokens": 4096}}
    # With no clamp, a budget over the client's own max_tokens is the client's
    # to hear about from the backend.
    unclamped = {"max_tokens": 2000, "reasoning": {"max_tokens": 3000}}
    [sent, fitted, as_sent], notes = await ask(
        start_daemon, fake_upstream, 8192, [over, fits, unclamped]
    )
    assert sent["max_tokens"] == 8192
    # The reasoning object's other keys go as the client sent them.
    assert sent["reasoning"] == {"max_tokens": 8191, "exclude": True}
    assert "8191" in notes["reasoning.max_tokens"]
    assert "8192" in notes["max_tokens"]
    assert fitted["reasoning"] == {"max_tokens": 4096}
    assert as_sent["reasoning"] == {"max_tokens": 3000}


async def test_a_clamped_max_completion_tokens_lowers_the_budget_too(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    asked = {"max_completion_tokens": 32000, "reasoning": {"max_tokens": 31999}}
    [sent], notes = await ask(start_daemon, fake_upstream, 8192, [asked])
    assert sent["max_completion_tokens"] == 8192
    assert sent["reasoning"] == {"max_tokens": 8191}
    assert "8191" in notes["reasoning.max_tokens"]


async def test_reasoning_is_dropped_when_the_clamped_max_tokens_leaves_no_budget_anthropic_takes(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    asked = {"max_tokens": 32000, "reasoning": {"max_tokens": 31999}}
    [sent], notes = await ask(start_daemon, fake_upstream, 1024, [asked])
    assert sent["max_tokens"] == 1024
    assert "reasoning" not in sent
    assert "dropped" in notes["reasoning"]
