"""An OpenAI-compatible backend's refusal (`content` null, the words in
`refusal`) reaches an Anthropic client as text, streamed or not."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local

REFUSAL = "I can't help with that."
BODY = {"model": "local", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}


def refused(*, usage: bool) -> dict[str, Any]:
    completion: dict[str, Any] = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": REFUSAL},
                "finish_reason": "stop",
            }
        ],
    }
    if usage:
        completion["usage"] = {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    return completion


def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return ("", {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})


async def test_a_refusal_reads_the_same_streamed_and_unstreamed(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    streamed = [
        chunk({"role": "assistant", "content": None}),
        chunk({"refusal": REFUSAL}),
        chunk({}, "stop"),
    ]
    fake_upstream.script(
        Reply(dialect="openai", events=streamed), Reply(dialect="openai", json=refused(usage=True))
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        async with client.messages.stream(**BODY) as stream:
            streamed_message = await stream.get_final_message()
        unary = await client.messages.create(**BODY)
    assert [(b.type, getattr(b, "text", None)) for b in streamed_message.content] == [
        ("text", REFUSAL)
    ]
    assert [(b.type, getattr(b, "text", None)) for b in unary.content] == [("text", REFUSAL)]
    assert unary.stop_reason == streamed_message.stop_reason == "end_turn"


async def test_an_unstreamed_refusal_counts_in_the_estimated_output_tokens(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Without the backend's usage, the output is estimated from the
    characters the model produced: the refusal's among them."""
    fake_upstream.script(Reply(dialect="openai", json=refused(usage=False)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        unary = await client.messages.create(**BODY)
    assert unary.usage.output_tokens > 0
