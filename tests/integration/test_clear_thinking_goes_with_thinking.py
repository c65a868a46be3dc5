"""Claude Code sends `thinking` with `context_management.edits` holding a
`clear_thinking_20251015` edit, which Anthropic refuses on a request
without thinking. Whatever takes thinking out of a request for a Claude
provider takes that edit with it, logged as dropped: a model that cannot
think, and a provider's max_output_tokens that leaves no room for a budget.
Edits of other kinds stay."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, dropped

HELLO: list[Any] = [{"role": "user", "content": "hello"}]
CLEAR_THINKING = {"type": "clear_thinking_20251015", "keep": "all"}
CLEAR_TOOL_USES = {"type": "clear_tool_uses_20250919"}
# Claude models the bundled capability registry knows: one that cannot think.
CANNOT_THINK = "claude-3-5-haiku-20241022"
CAN_THINK = "claude-sonnet-4-5"


def claude(url: str, model: str, extra: str = "") -> str:
    return provider_yaml("claude", url, extra=extra).replace("claude-model", model)


@pytest.mark.parametrize(
    "provider",
    [(CANNOT_THINK, ""), (CAN_THINK, "max_output_tokens: 1024")],
    ids=["model_cannot_think", "no_room_for_a_budget"],
)
@pytest.mark.parametrize(
    ("edits", "left"),
    [([CLEAR_THINKING], None), ([CLEAR_THINKING, CLEAR_TOOL_USES], [CLEAR_TOOL_USES])],
    ids=["only_clear_thinking", "with_another_edit"],
)
async def test_clear_thinking_edits_go_with_the_thinking_taken_out(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    provider: tuple[str, str],
    edits: list[Any],
    left: list[Any] | None,
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, *provider)))
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            await client.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=32000,
                messages=HELLO,
                thinking={"type": "enabled", "budget_tokens": 31999},
                extra_body={"context_management": {"edits": edits}},
            )
    sent = fake_upstream.requests[0].json
    assert "thinking" not in sent
    if left is None:
        assert "context_management" not in sent
    else:
        assert sent["context_management"] == {"edits": left}
    fields = [line.split(":")[0] for line in dropped(logs)]
    assert "thinking" in fields and "context_management.edits" in fields


async def test_edits_stay_when_the_thinking_fits(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(claude(fake_upstream.url, CAN_THINK)))
    async with a_sdk(d.url) as client:
        await client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=32000,
            messages=HELLO,
            thinking={"type": "enabled", "budget_tokens": 31999},
            extra_body={"context_management": {"edits": [CLEAR_THINKING]}},
        )
    sent = fake_upstream.requests[0].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 31999}
    assert sent["context_management"] == {"edits": [CLEAR_THINKING]}
