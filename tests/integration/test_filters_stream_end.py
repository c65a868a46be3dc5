"""Text the output filters still hold when a stream ends (a last line that
might have been a call) ends the text block it belongs to, as in the
whole answer: one block, its line break kept."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local

MESSAGES: list[Any] = [{"role": "user", "content": "show the config"}]
A_TOOLS: list[Any] = [{"name": "Read", "description": "r", "input_schema": {"type": "object"}}]
A_KW: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": A_TOOLS}


def texts(message: Any) -> list[str]:
    return [b.text for b in message.content if b.type == "text"]


async def test_a_last_line_held_as_a_possible_call_ends_the_same_text_block(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    text = 'Here is the config:\n{"debug": true}'
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(text)),
        Reply(dialect="openai", events=openai_text_stream(["Here is the config:\n", text[20:]])),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        unary = await client.messages.create(**A_KW)
        async with client.messages.stream(**A_KW) as stream:
            streamed = await stream.get_final_message()
    assert texts(unary) == [text]
    assert texts(streamed) == [text]


async def test_a_name_held_at_the_end_of_a_stream_stays_in_its_sentence(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # "Read" could start a `Read(...)` call until the stream ends.
    text = "Done. Next, try this:\nRead"
    fake_upstream.script(
        Reply(dialect="openai", events=openai_text_stream(["Done. Next, try this:\n", "Read"]))
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client, client.messages.stream(**A_KW) as stream:
        streamed = await stream.get_final_message()
    assert texts(streamed) == [text]
