"""OpenAI requests valid for OpenAI reach an Anthropic provider in a form it
takes: every reasoning_effort of the openai SDK, reasoning asked of a model
that cannot think, a history with a call whose arguments are not JSON, and
a conversation ending in an assistant message (a prefill)."""

from __future__ import annotations

import json
import typing
from typing import Any

import aiohttp
import pytest
from openai.types.shared.reasoning_effort import ReasoningEffort
from structlog.testing import capture_logs

from coderouterd.translate.params_o2a import THINKING_BUDGETS
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import dropped
from tests.integration.clients import o_sdk as sdk

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
# Every value the installed SDK lets a client send, but "none".
SDK_EFFORTS = [
    v for arg in typing.get_args(ReasoningEffort) for v in typing.get_args(arg) if v != "none"
]


@pytest.mark.parametrize("effort", SDK_EFFORTS)
async def test_every_reasoning_effort_of_the_openai_sdk_makes_claude_think(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, effort: Any
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    async with sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="m", messages=MESSAGES, reasoning_effort=effort
        )
    assert completion.choices[0].message.content == "ok"
    thinking = fake_upstream.requests[0].json["thinking"]
    assert thinking["type"] == "enabled"
    assert thinking["budget_tokens"] >= THINKING_BUDGETS["minimal"]
    if effort in ("xhigh", "max"):
        assert thinking["budget_tokens"] >= THINKING_BUDGETS["high"]


async def test_reasoning_effort_on_a_model_that_cannot_think_changes_nothing_else(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """claude-3-5-haiku cannot think (registry) and answers at most 8192
    tokens: the request goes as if no reasoning had been asked for, with
    the default max_tokens and the client's own temperature."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    config = (
        "providers:\n  - name: c\n    kind: anthropic\n"
        f"    base_url: {fake_upstream.url}\n    model: claude-3-5-haiku-20241022\n"
        "profiles:\n  - name: default\n    providers: [c]\n"
    )
    d = await start_daemon(config)
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            await client.chat.completions.create(
                model="m", messages=MESSAGES, reasoning_effort="high", temperature=0.2
            )
    sent = fake_upstream.requests[0].json
    assert "thinking" not in sent
    assert sent["max_tokens"] == 4096
    assert sent["temperature"] == 0.2
    assert [x.split(":")[0] for x in dropped(logs)] == ["reasoning_effort"]


# A tool call a local model wrote with its arguments cut short (it hit its
# max_tokens mid-call): the client keeps it in its history as it came.
CUT_ARGUMENTS = '{"file_path": "/x.py", "content": "def f('
HISTORY_WITH_CUT_CALL: list[Any] = [
    {"role": "user", "content": "write it"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "Write", "arguments": CUT_ARGUMENTS},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "Error: the arguments are not JSON"},
]


async def test_a_history_with_a_call_whose_arguments_are_not_json_reaches_claude(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The first provider of the chain takes it, the arguments kept as
    `{"_raw": …}` and the change recorded."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(
        chain_yaml(
            provider_yaml("claude", fake_upstream.url),
            provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"),
        )
    )
    with capture_logs() as logs:
        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "messages": HISTORY_WITH_CUT_CALL}
            async with http.post(d.url + "/v1/chat/completions", json=body) as resp:
                status, text = resp.status, await resp.text()
    assert status == 200, text
    assert json.loads(text)["choices"][0]["message"]["content"] == "ok"
    [sent] = [r.json for r in fake_upstream.requests]
    assert "max_tokens" in sent  # the Anthropic provider, not the local one
    [call] = [b for b in sent["messages"][1]["content"] if b["type"] == "tool_use"]
    assert call["input"] == {"_raw": CUT_ARGUMENTS}
    assert call["name"] == "Write"
    assert [x.split(":")[0] for x in dropped(logs)] == ["tool_calls.arguments"]


@pytest.mark.parametrize(
    ("content", "sent"),
    [
        ("Here is the plan: ", [{"type": "text", "text": "Here is the plan:"}]),
        ("Here is the plan:\n\n", [{"type": "text", "text": "Here is the plan:"}]),
        (
            [{"type": "text", "text": "One. "}, {"type": "text", "text": "Two \n"}],
            [{"type": "text", "text": "One. "}, {"type": "text", "text": "Two"}],
        ),
    ],
)
async def test_a_final_assistant_message_reaches_claude_without_trailing_whitespace(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, content: Any, sent: Any
) -> None:
    """The last assistant turn is Anthropic's prefill, which must not end
    in whitespace; an earlier assistant turn keeps its text as it was."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    messages: list[Any] = [
        {"role": "user", "content": "plan it"},
        {"role": "assistant", "content": "Thinking it over. "},
        {"role": "user", "content": "go on"},
        {"role": "assistant", "content": content},
    ]
    async with sdk(d.url) as client:
        completion = await client.chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == "ok"
    turns = fake_upstream.requests[0].json["messages"]
    assert turns[1]["content"] == [{"type": "text", "text": "Thinking it over. "}]
    assert turns[-1] == {"role": "assistant", "content": sent}
