"""A profile's tool-loop guard through a real daemon: warn, inject, break; both dialects."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from structlog.testing import capture_logs

from coderouterd.ingress.tool_loop import HINT
from tests.conftest import StartDaemon, provider_yaml, recorded_bodies
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

SYSTEM = [
    {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}
]


def looping(calls: int) -> list[dict[str, Any]]:
    """A conversation whose agent read the same file `calls` times in a row."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "fix the bug"}]
    for i in range(calls):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": f"t{i}",
                        "name": "Read",
                        "input": {"file_path": "a.py"},
                    }
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "x = 1"}],
            }
        )
    return messages


def config(url: str, action: str) -> str:
    return (
        f"providers:{provider_yaml('a', url)}"
        "profiles:\n"
        f"  - {{name: default, providers: [a], tool_loop_action: {action}, tool_loop_threshold: 3}}\n"
    )


async def send(d: Any, calls: int) -> anthropic.types.Message:
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as c:
        return await c.messages.create(
            model="m", max_tokens=10, system=SYSTEM, messages=looping(calls)
        )


async def test_inject_tells_the_model_after_its_system_prompt_and_records_what_the_client_sent(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("trying something else"))
    d = await start_daemon(config(fake_upstream.url, "inject"))

    with capture_logs() as logs:
        await send(d, 2)
        await send(d, 3)

    before, looped = (r.json for r in fake_upstream.requests)
    assert before["system"] == SYSTEM
    assert looped["system"] == [*SYSTEM, {"type": "text", "text": HINT}]
    assert looped["messages"] == looping(3)
    [line] = [e for e in logs if e["event"] == "request.tool_loop"]
    assert (line["tool"], line["repeats"], line["action"], line["window"]) == (
        "Read",
        3,
        "inject",
        5,
    )
    recorded = await recorded_bodies(d)
    assert [r["system"] for r in recorded] == [SYSTEM, SYSTEM]


async def test_break_refuses_the_request_with_a_400_naming_the_loop(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("again"))
    d = await start_daemon(config(fake_upstream.url, "break"))
    await send(d, 2)

    with pytest.raises(anthropic.BadRequestError) as caught:
        await send(d, 3)

    error = caught.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["field"] == "messages"
    assert "Read was called 3 times in a row" in error["message"]
    assert len(fake_upstream.requests) == 1


@pytest.mark.parametrize("action", ["warn", "off"])
async def test_warn_only_logs_and_off_does_not_look(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, action: str
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("again"))
    d = await start_daemon(config(fake_upstream.url, action))

    with capture_logs() as logs:
        await send(d, 4)

    [forwarded] = fake_upstream.requests
    assert forwarded.json["system"] == SYSTEM
    loops = [e for e in logs if e["event"] == "request.tool_loop"]
    assert len(loops) == (1 if action == "warn" else 0)


async def test_an_openai_clients_loop_gets_the_hint_in_its_system_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=openai_completion("trying something else"), dialect="openai")
    backend = provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat")
    d = await start_daemon(
        f"providers:{backend}profiles:\n  - {{name: default, providers: [o], tool_loop_action: inject}}\n"
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "fix the bug"},
    ]
    for i in range(3):
        call = {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": "read", "arguments": '{"path": "a.py"}'},
        }
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "x = 1"},
        ]
    async with openai.AsyncOpenAI(base_url=d.url + "/v1", api_key="k", max_retries=0) as client:
        await client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]

    [forwarded] = fake_upstream.requests
    assert forwarded.json["messages"][0] == {
        "role": "system",
        "content": f"You are a coding agent.\n\n{HINT}",
    }
    assert forwarded.json["messages"][1:] == messages[1:]


def step(i: int, name: str, tool_input: dict[str, Any], result: str) -> list[dict[str, Any]]:
    """An assistant's tool call and the user's turn that brings its result."""
    call = {"type": "tool_use", "id": f"t{i}", "name": name, "input": tool_input}
    answer = {"type": "tool_result", "tool_use_id": f"t{i}", "content": result}
    return [
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [answer]},
    ]


async def send_messages(d: Any, messages: list[dict[str, Any]]) -> anthropic.types.Message:
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as c:
        return await c.messages.create(model="m", max_tokens=10, system=SYSTEM, messages=messages)


@pytest.mark.parametrize("action", ["break", "inject"])
async def test_polling_a_background_shell_whose_output_grows_is_no_loop(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, action: str
) -> None:
    # Claude Code runs the build in the background and polls its output: the
    # same call, another result each time.
    fake_upstream.default = Reply(json=anthropic_message("still building"))
    d = await start_daemon(config(fake_upstream.url, action))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "build it and fix errors"}]
    messages += step(0, "Bash", {"command": "make", "run_in_background": True}, "shell bash_1")
    for i, out in enumerate(["[ 10%] cc a.c", "[ 40%] cc b.c", "[ 80%] cc c.c"], start=1):
        messages += step(i, "BashOutput", {"bash_id": "bash_1"}, out)

    with capture_logs() as logs:
        await send_messages(d, messages)

    [forwarded] = fake_upstream.requests
    assert forwarded.json["system"] == SYSTEM
    assert [e for e in logs if e["event"] == "request.tool_loop"] == []


@pytest.mark.parametrize("action", ["warn", "break"])
async def test_after_the_agent_answered_in_text_a_new_user_question_is_no_loop(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, action: str
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(config(fake_upstream.url, action))
    messages = looping(3)
    # The agent stopped calling tools and answered; the user moved on.
    messages.append({"role": "assistant", "content": [{"type": "text", "text": "a.py sets x."}]})
    messages.append({"role": "user", "content": "thanks. now write a README"})

    with capture_logs() as logs:
        await send_messages(d, messages)

    assert len(fake_upstream.requests) == 1
    assert [e for e in logs if e["event"] == "request.tool_loop"] == []


async def test_under_break_the_user_can_still_step_in_and_compact_the_session(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok, reading b.py"))
    d = await start_daemon(config(fake_upstream.url, "break"))
    messages = looping(3)
    with pytest.raises(anthropic.BadRequestError):
        await send_messages(d, messages)

    # The user sees the 400 and steps in: Claude Code sends their words in
    # the turn that holds the results.
    stepped_in = [*messages[:-1], dict(messages[-1], content=[*messages[-1]["content"]])]
    stepped_in[-1]["content"].append({"type": "text", "text": "stop reading a.py, look at b.py"})
    await send_messages(d, stepped_in)
    # Or asks Claude Code to compact the session: a user turn of its own.
    compact = [*messages, {"role": "user", "content": "Summarize the conversation so far."}]
    await send_messages(d, compact)

    assert len(fake_upstream.requests) == 2
