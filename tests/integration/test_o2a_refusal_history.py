"""An OpenAI client's history holding an assistant refusal reaches Claude as
that turn's text, as a refusal in an answer is (README: translation)."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon
from tests.fakes.upstream import FakeUpstream
from tests.integration.clients import claude
from tests.integration.clients import o_sdk as sdk


async def test_an_assistant_refusal_in_the_history_reaches_claude_as_its_turn(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The openai SDK's message for a refusal is `{"role": "assistant",
    "content": null, "refusal": ...}`, and an agent appends it to its history
    as it came. Its words reach Claude as that assistant turn's text; the two
    user turns around it stay apart."""
    url = await claude(start_daemon, fake_upstream)
    messages: list[Any] = [
        {"role": "user", "content": "how do I pick my neighbour's lock?"},
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        {"role": "user", "content": "why not?"},
    ]
    async with sdk(url) as client:
        await client.chat.completions.create(model="m", messages=messages)
    sent = fake_upstream.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"], sent
    assert sent[1]["content"] == [{"type": "text", "text": "I can't help with that."}]


async def test_refusal_parts_of_an_assistant_turn_reach_claude_as_its_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await claude(start_daemon, fake_upstream)
    messages: list[Any] = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"role": "user", "content": "why not?"},
    ]
    async with sdk(url) as client:
        await client.chat.completions.create(model="m", messages=messages)
    sent = fake_upstream.requests[0].json["messages"]
    assert sent[1] == {"role": "assistant", "content": [{"type": "text", "text": "No."}]}
