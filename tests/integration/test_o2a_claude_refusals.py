"""OpenAI requests valid for OpenAI that the Messages API refuses when
translated as they are: reach Claude in a form it takes, through a fake
Claude that answers 400 to what the real one refuses."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.conftest import RunningDaemon, StartDaemon
from tests.fakes.strict import anthropic_refusal
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.clients import dropped
from tests.integration.clients import o_sdk as sdk

CLAUDE_MODEL = "claude-sonnet-4-5-20250929"


def claude_refusal(body: dict[str, Any]) -> str | None:
    """What the Messages API answers 400 to, in its words: the rules of
    strict.anthropic_refusal, and one of recent Claude models."""
    if "temperature" in body and "top_p" in body:
        return "`temperature` and `top_p` cannot both be specified for this model."
    return anthropic_refusal(body)


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def _strict_claude(req: Recorded) -> Reply:
    problem = claude_refusal(req.json or {})
    if problem is not None:
        return anthropic_error(400, "invalid_request_error", problem)
    return Reply(json=anthropic_message("ok"))


async def claude_daemon(start_daemon: StartDaemon, fake_upstream: FakeUpstream) -> RunningDaemon:
    fake_upstream.responder = _strict_claude
    return await start_daemon(
        "providers:\n  - name: claude\n    kind: anthropic\n"
        f"    base_url: {fake_upstream.url}\n    model: {CLAUDE_MODEL}\n"
        "profiles:\n  - name: default\n    providers: [claude]\n"
    )


def _call(call_id: str, path: str) -> dict[str, Any]:
    arguments = f'{{"path": "{path}"}}'
    return {"id": call_id, "type": "function", "function": {"name": "Read", "arguments": arguments}}


READ_TOOL: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


async def test_tool_ids_a_backend_reused_across_turns_reach_claude_unique_and_paired(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Kimi numbers its calls per answer: two turns each called
    `functions.Read:0`, one of them twice over, in parallel."""
    d = await claude_daemon(start_daemon, fake_upstream)
    messages: list[Any] = [
        {"role": "user", "content": "read a"},
        {"role": "assistant", "content": None, "tool_calls": [_call("functions.Read:0", "a")]},
        {"role": "tool", "tool_call_id": "functions.Read:0", "content": "A"},
        {"role": "user", "content": "now read b and c"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [_call("functions.Read:0", "b"), _call("functions.Read:0", "c")],
        },
        {"role": "tool", "tool_call_id": "functions.Read:0", "content": "B"},
        {"role": "tool", "tool_call_id": "functions.Read:0", "content": "C"},
    ]
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            completion = await client.chat.completions.create(
                model="m", messages=messages, tools=READ_TOOL
            )
    assert completion.choices[0].message.content == "ok"
    sent = fake_upstream.requests[0].json
    calls = {
        b["id"]: b["input"]["path"]
        for m in sent["messages"]
        for b in m["content"]
        if b["type"] == "tool_use"
    }
    results = {
        b["tool_use_id"]: b["content"]
        for m in sent["messages"]
        for b in m["content"]
        if b["type"] == "tool_result"
    }
    # Each result still answers its own call.
    assert sorted((path, results[i]) for i, path in calls.items()) == [
        ("a", "A"),
        ("b", "B"),
        ("c", "C"),
    ]
    assert dropped(logs) == []


async def test_temperature_and_top_p_together_reach_claude_as_temperature_alone(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """LiteLLM, LangChain and many UIs send both; OpenAI takes both."""
    d = await claude_daemon(start_daemon, fake_upstream)
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            completion = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], temperature=0.2, top_p=0.9
            )
    assert completion.choices[0].message.content == "ok"
    sent = fake_upstream.requests[0].json
    assert (sent["temperature"], "top_p" in sent) == (0.2, False)
    assert [x.split(":")[0] for x in dropped(logs)] == ["top_p"]


async def test_a_prefill_with_reasoning_effort_reaches_claude_without_thinking(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A conversation ending in an assistant message (aider continues an
    answer cut at max_tokens that way): thinking would need the prefill to
    start with signed thinking, which an OpenAI client never has."""
    d = await claude_daemon(start_daemon, fake_upstream)
    messages: list[Any] = [
        {"role": "user", "content": "write a haiku"},
        {"role": "assistant", "content": "Autumn wind"},
    ]
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            completion = await client.chat.completions.create(
                model="m", messages=messages, reasoning_effort="low"
            )
    assert completion.choices[0].message.content == "ok"
    sent = fake_upstream.requests[0].json
    assert "thinking" not in sent
    assert sent["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Autumn wind"}],
    }
    assert [x.split(":")[0] for x in dropped(logs)] == ["reasoning_effort"]


async def test_a_tool_with_empty_parameters_reaches_claude_with_an_object_schema(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Roo Code and MCP bridges declare a tool without arguments so."""
    d = await claude_daemon(start_daemon, fake_upstream)
    tools: list[Any] = [
        {"type": "function", "function": {"name": "now", "parameters": {}}},
        {"type": "function", "function": {"name": "ls", "parameters": {"required": []}}},
    ]
    async with sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "time?"}], tools=tools
        )
    assert completion.choices[0].message.content == "ok"
    assert [t["input_schema"] for t in fake_upstream.requests[0].json["tools"]] == [
        {"type": "object", "properties": {}},
        {"type": "object", "properties": {}, "required": []},
    ]
