"""A client shapes `thinking`, `output_config.effort` and sampling for the
Claude model it names; the provider's Claude model gets them in the shape
it takes (the registry's thinking_modes, effort, sampling), through a fake
Anthropic upstream that refuses, keyed on the body's model, what the real
API refuses (tests/fakes/strict.generation_refusal)."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon
from tests.fakes.strict import anthropic_refusal
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.clients import a_sdk, dropped, o_sdk

CLEAR_THINKING = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
HI = [{"role": "user", "content": "hi"}]


def strict_claude(refused: list[str]) -> Any:
    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        if (problem := anthropic_refusal(body)) is not None:
            refused.append(problem)
            return anthropic_error(400, "invalid_request_error", problem)
        if body.get("stream"):
            return Reply(events=anthropic_text_stream(["ok"]))
        return Reply(json=anthropic_message("ok"))

    return choose


async def claude_on(
    model: str, start_daemon: StartDaemon, fake_upstream: FakeUpstream, refused: list[str]
) -> str:
    """A daemon whose one provider runs the Claude `model`; its URL."""
    fake_upstream.responder = strict_claude(refused)
    d = await start_daemon(
        "providers:\n  - name: claude\n    kind: anthropic\n"
        f"    base_url: {fake_upstream.url}\n    model: {model}\n"
        "profiles:\n  - name: default\n    providers: [claude]\n"
    )
    return d.url


def sent(fake_upstream: FakeUpstream) -> dict[str, Any]:
    body = fake_upstream.requests[-1].json
    assert isinstance(body, dict)
    return body


async def sent_for(
    runs: str, start_daemon: StartDaemon, fake_upstream: FakeUpstream, /, **request: Any
) -> dict[str, Any]:
    """What a provider that runs the Claude model `runs` is sent for one
    Anthropic SDK `request`, which the strict upstream took."""
    refused: list[str] = []
    url = await claude_on(runs, start_daemon, fake_upstream, refused)
    async with a_sdk(url) as client:
        await client.messages.create(**request)
    assert refused == []
    return sent(fake_upstream)


@pytest.mark.parametrize(
    ("effort", "budget"),
    [(None, 24576), ("low", 2048), ("medium", 8192), ("max", 24576)],
)
async def test_adaptive_thinking_reaches_sonnet_4_as_the_budget_of_its_effort_level(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, effort: str | None, budget: int
) -> None:
    """Claude Code's default request (it names Opus 4.8) through the README's
    example provider, Sonnet 4: adaptive becomes a budget, effort goes."""
    refused: list[str] = []
    url = await claude_on("claude-sonnet-4-20250514", start_daemon, fake_upstream, refused)
    extra: dict[str, Any] = {"output_config": {"effort": effort}} if effort else {}
    with capture_logs() as logs:
        async with (
            a_sdk(url) as client,
            client.messages.stream(
                model="claude-opus-4-8",
                max_tokens=64000,
                messages=HI,
                thinking={"type": "adaptive"},
                extra_body={"context_management": CLEAR_THINKING},
                **extra,
            ) as stream,
        ):
            answer = await stream.get_final_message()
    assert refused == []
    assert answer.content[0].type == "text"
    body = sent(fake_upstream)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert "output_config" not in body
    assert body["context_management"] == CLEAR_THINKING
    fields = [d.split(":")[0] for d in dropped(logs)]
    assert fields == ["thinking.type"] + (["output_config.effort"] if effort else [])


@pytest.mark.parametrize(
    ("max_tokens", "thinking"),
    [(4000, {"type": "enabled", "budget_tokens": 3999}), (1024, None)],
    ids=["lowered", "no-room"],
)
async def test_a_budget_made_from_adaptive_thinking_stays_below_max_tokens(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    max_tokens: int,
    thinking: dict[str, Any] | None,
) -> None:
    """Below max_tokens, as Anthropic requires; with no room for 1024 tokens,
    no thinking at all, and the clear_thinking edits that need it go too."""
    body = await sent_for(
        "claude-sonnet-4-5",
        start_daemon,
        fake_upstream,
        model="claude-opus-4-8",
        max_tokens=max_tokens,
        messages=HI,
        thinking={"type": "adaptive"},
        output_config={"effort": "high"},
        extra_body={"context_management": CLEAR_THINKING},
    )
    assert body.get("thinking") == thinking
    assert ("context_management" in body) == (thinking is not None)


async def test_opus_4_5_gets_a_budget_for_adaptive_thinking_and_keeps_its_effort_level(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    body = await sent_for(
        "claude-opus-4-5-20251101",
        start_daemon,
        fake_upstream,
        model="claude-opus-4-8",
        max_tokens=32000,
        messages=HI,
        thinking={"type": "adaptive"},
        output_config={"effort": "medium"},
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert body["output_config"] == {"effort": "medium"}


async def test_a_budget_reaches_opus_4_8_as_adaptive_thinking_at_the_effort_it_stands_for(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`claude --model claude-sonnet-4-5` through an Opus 4.8 provider: its
    budget of 31999 is `high`; an effort level the client set is kept, and
    a thinking shape the model takes is forwarded as it came."""
    refused: list[str] = []
    url = await claude_on("claude-opus-4-8", start_daemon, fake_upstream, refused)
    with capture_logs() as logs:
        async with a_sdk(url) as client:
            await client.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=32000,
                messages=HI,
                thinking={"type": "enabled", "budget_tokens": 31999},
            )
            first = sent(fake_upstream)
            await client.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=8000,
                messages=HI,
                thinking={"type": "enabled", "budget_tokens": 2048},
                output_config={"effort": "max"},
            )
            second = sent(fake_upstream)
            await client.messages.create(
                model="claude-opus-4-8",
                max_tokens=8000,
                messages=HI,
                thinking={"type": "adaptive"},
                output_config={"effort": "low"},
            )
            third = sent(fake_upstream)
    assert refused == []
    assert (first["thinking"], first["output_config"]) == ({"type": "adaptive"}, {"effort": "high"})
    assert (second["thinking"], second["output_config"]) == (
        {"type": "adaptive"},
        {"effort": "max"},
    )
    assert (third["thinking"], third["output_config"]) == ({"type": "adaptive"}, {"effort": "low"})
    fields = [d.split(":")[0] for d in dropped(logs)]
    assert fields == ["thinking.type", "output_config.effort", "thinking.type"]


async def test_opus_4_8_gets_no_sampling_parameters(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    with capture_logs() as logs:
        body = await sent_for(
            "claude-opus-4-8",
            start_daemon,
            fake_upstream,
            model="claude-sonnet-4-5",
            max_tokens=1000,
            messages=HI,
            extra_body={"temperature": 0.2, "top_k": 40},
        )
    assert "temperature" not in body and "top_k" not in body
    assert sorted(d.split(":")[0] for d in dropped(logs)) == ["temperature", "top_k"]


async def test_a_tool_loop_claude_stepped_through_without_thinking_goes_on_sonnet_4_without_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """With adaptive thinking Opus 4.8 may call a tool without thinking; sent
    as a budget to Sonnet 4, thinking then has to go for that step, since
    with a budget Anthropic requires the call being answered to start with
    thinking."""
    history: list[Any] = [
        {"role": "user", "content": "read a"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
    ]
    body = await sent_for(
        "claude-sonnet-4-20250514",
        start_daemon,
        fake_upstream,
        model="claude-opus-4-8",
        max_tokens=16000,
        messages=history,
        thinking={"type": "adaptive"},
        output_config={"effort": "high"},
    )
    assert "thinking" not in body


@pytest.mark.parametrize(("reasoning", "effort"), [("minimal", "low"), ("xhigh", "xhigh")])
async def test_an_openai_clients_reasoning_effort_reaches_opus_4_8_as_adaptive_thinking(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, reasoning: str, effort: str
) -> None:
    refused: list[str] = []
    url = await claude_on("claude-opus-4-8", start_daemon, fake_upstream, refused)
    with capture_logs() as logs:
        async with o_sdk(url) as client:
            completion = await client.chat.completions.create(
                model="m",
                messages=HI,
                reasoning_effort=reasoning,
                temperature=1,
            )
    assert refused == []
    assert completion.choices[0].message.content == "ok"
    body = sent(fake_upstream)
    assert (body["thinking"], body["output_config"]) == ({"type": "adaptive"}, {"effort": effort})
    assert "temperature" not in body
    assert sorted(d.split(":")[0] for d in dropped(logs)) == ["reasoning_effort", "temperature"]
