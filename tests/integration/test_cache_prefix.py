"""The prefix Claude is sent, turn after turn of a growing conversation."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import aiohttp

from tests.conftest import StartDaemon, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MARK = {"type": "ephemeral"}
SYSTEM = [
    {"type": "text", "text": "You are Claude Code."},
    {
        "type": "text",
        "text": "Long instructions. " * 50,
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    },
]
TOOLS = [
    {
        "name": "Read",
        "description": "read",
        "input_schema": {"type": "object"},
        "cache_control": MARK,
    }
]


def strip_marks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_marks(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [strip_marks(v) for v in value]
    return value


def turn_bodies() -> list[dict[str, Any]]:
    history: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "fix the bug"}]},
        # A local model (Ollama's Anthropic API) answered this step.
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "let me look", "signature": ""},
                {"type": "text", "text": ""},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"p": "a"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "ok", "signature": "sig1"},
                {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"p": "b"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "B"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "done", "signature": "s2"},
                {"type": "text", "text": "Fixed."},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "thanks, now the tests"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "s3"},
                {"type": "text", "text": "Done."},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "great"}]},
    ]
    bodies = []
    for n in (3, 5, 7, 9):
        messages = copy.deepcopy(history[:n])
        messages[-1]["content"][-1]["cache_control"] = MARK
        bodies.append(
            {
                "model": "m",
                "max_tokens": 2000,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "system": SYSTEM,
                "tools": TOOLS,
                "messages": messages,
            }
        )
    return bodies


async def test_the_prefix_claude_caches_is_the_same_bytes_turn_after_turn(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A Claude Code session (markers on system, tools and the last message,
    moved each turn) whose history holds a local model's unsigned thinking and
    empty text, through a profile and a provider that append system text:
    what the daemon changes is changed the same way every turn, so turn N's
    system, tools and messages are a prefix of turn N+1's (markers aside) and
    Anthropic's cache keeps hitting."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    claude = provider_yaml("claude", fake_upstream.url, extra="append_system_prompt: Be brief.")
    claude = claude.replace("claude-model", "claude-sonnet-4-5")
    d = await start_daemon(
        f"providers:{claude}profiles:\n  - name: default\n    providers: [claude]\n"
        "    append_system_prompt: Profile text.\n"
    )
    async with aiohttp.ClientSession() as http:
        for body in turn_bodies():
            async with http.post(
                f"{d.url}/v1/messages", data=json.dumps(body, separators=(",", ":"))
            ) as r:
                assert r.status == 200, await r.text()
    sent = [r.json for r in fake_upstream.requests]
    for a, b in itertools.pairwise(sent):
        assert a["system"] == b["system"]
        assert a["tools"] == b["tools"]
        n = len(a["messages"])
        assert strip_marks(a["messages"]) == strip_marks(b["messages"][:n]), (
            json.dumps(a["messages"]),
            json.dumps(b["messages"][:n]),
        )
