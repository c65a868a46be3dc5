"""A call printed as text that carries a large file is lifted the same way
whether the answer streams or comes whole, for either client."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import local, o_sdk, unary_and_streamed

MESSAGES: list[Any] = [{"role": "user", "content": "write it"}]
A_TOOLS: list[Any] = [
    {"name": "Write", "description": "write a file", "input_schema": {"type": "object"}}
]
O_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "Write", "parameters": {"type": "object"}}}
]
A_KW: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": A_TOOLS}
# 70 KB: past the 64 KiB a candidate was once held for while streaming.
ARGS = {"file_path": "big.txt", "content": "print('x')\n" * 6400}
TEXT = (
    "Writing it.\n<tool_call>" + json.dumps({"name": "Write", "arguments": ARGS}) + "</tool_call>"
)
PIECES = [TEXT[i : i + 1000] for i in range(0, len(TEXT), 1000)]


async def test_a_streamed_call_with_a_large_file_is_lifted_as_a_whole_answer_is(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(TEXT)),
        Reply(dialect="openai", events=openai_text_stream(PIECES)),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    unary, streamed = await unary_and_streamed(d.url, A_KW)
    for message in (unary, streamed):
        assert [b.type for b in message.content] == ["text", "tool_use"]
        assert message.content[1].input == ARGS  # type: ignore[union-attr]
        assert message.stop_reason == "tool_use"


async def test_an_openai_client_streamed_a_call_with_a_large_file_gets_the_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(PIECES)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS, stream=True
        )
        chunks = [c async for c in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert [json.loads(c.function.arguments or "") for c in calls] == [ARGS]  # type: ignore[union-attr]
    assert "".join(d.content or "" for d in deltas) == "Writing it."
