"""A loop the agent left with an answer in text, followed by the user's new
request, counts for nothing: under `tool_loop_action: break` the calls made
as asked go through; both dialects."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import StartDaemon, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_tool_loop import looping

ASKED = "thanks. now add a docstring to a.py"
REMINDER = "<system-reminder>The todo list is empty.</system-reminder>"


def config(url: str, kind: str = "anthropic") -> str:
    backend = provider_yaml("a", url if kind == "anthropic" else url + "/v1", kind=kind)
    return (
        f"providers:{backend}"
        "profiles:\n"
        "  - {name: default, providers: [a], tool_loop_action: break, tool_loop_threshold: 3}\n"
    )


def answered_then(said: str) -> list[dict[str, Any]]:
    """Read(a.py) twice, an answer in text, `said` by the user, Read(a.py) once more."""
    reads = looping(3)
    answer = {"role": "assistant", "content": [{"type": "text", "text": "a.py sets x."}]}
    return [*reads[:5], answer, {"role": "user", "content": said}, *reads[5:]]


async def test_a_new_request_after_an_answer_in_text_goes_through_under_break(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("adding the docstring"))
    d = await start_daemon(config(fake_upstream.url))
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        answer = await client.messages.create(
            model="m", max_tokens=10, messages=answered_then(ASKED)
        )
        assert answer.content[0].type == "text"
        assert len(fake_upstream.requests) == 1
        # Only Claude Code's note after the text: the agent never left the
        # loop, and the three reads are refused.
        with pytest.raises(anthropic.BadRequestError, match="called 3 times in a row"):
            await client.messages.create(model="m", max_tokens=10, messages=answered_then(REMINDER))
    assert len(fake_upstream.requests) == 1


def openai_read(i: int) -> list[dict[str, Any]]:
    call = {
        "id": f"c{i}",
        "type": "function",
        "function": {"name": "Read", "arguments": '{"file_path": "a.py"}'},
    }
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{i}", "content": "x = 1"},
    ]


async def test_an_openai_clients_new_request_after_an_answer_in_text_goes_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("adding it"))
    d = await start_daemon(config(fake_upstream.url, "openai_compat"))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "what does a.py set?"}]
    messages += [*openai_read(0), *openai_read(1)]
    messages.append({"role": "assistant", "content": "a.py sets x."})
    messages.append({"role": "user", "content": ASKED})
    messages += openai_read(2)
    async with openai.AsyncOpenAI(base_url=d.url + "/v1", api_key="k", max_retries=0) as client:
        completion = await client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "adding it"
    assert len(fake_upstream.requests) == 1
