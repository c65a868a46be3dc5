"""A model whose chat template opens `<think>` (`assume_think_open`): its
reasoning never reaches the text, however long it is, and a think tag in a
call it prints (the source of a file it writes) is the call's data."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk, unary_and_streamed

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
A_TOOLS: list[Any] = [
    {"name": "Write", "description": "write a file", "input_schema": {"type": "object"}},
]
O_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "Write", "parameters": {"type": "object"}}}
]
A_KW: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": A_TOOLS}
OPEN = "output_filters: {assume_think_open: true}"
ARGS = {"file_path": "strip.py", "content": 'reply.split("</think>")[-1]\n'}
CALL_TEXT = "Writing the helper.\n<tool_call>" + json.dumps({"name": "Write", "arguments": ARGS})
CALL_TEXT += "</tool_call>"
# QwQ and R1 distills reason for 16k tokens and more: past the 64 KiB the
# start of the text is held for.
REASONING = "Let me check this step by step. " * 2200
ANSWER = "The answer is 4."
REASONED = REASONING + "</think>\n\n" + ANSWER


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def summary(message: Any) -> list[tuple[str, Any]]:
    return [
        (b.type, b.input if b.type == "tool_use" else b.text if b.type == "text" else None)
        for b in message.content
    ]


async def test_a_think_tag_in_a_printed_call_is_data_when_the_model_did_not_think(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The rule is where the tag falls, not whether a call was named: a
    reasoning that mentions <tool_call> and drafts a whole call still ends
    at its `</think>` (the third answer)."""
    reasoning = "I should answer in <tool_call> tags, like <tool_call>{}</tool_call>.\n"
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(CALL_TEXT)),
        Reply(dialect="openai", events=openai_text_stream(pieces(CALL_TEXT, 5))),
        Reply(dialect="openai", json=openai_completion(reasoning + "</think>\n\n" + CALL_TEXT)),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url, OPEN)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW)
        async with client.messages.stream(**A_KW) as stream:
            streamed = await stream.get_final_message()
        reasoned = await client.messages.create(**A_KW)
    for answer in (message, streamed):
        assert summary(answer) == [("text", "Writing the helper."), ("tool_use", ARGS)]
        assert answer.stop_reason == "tool_use"
    assert [b.type for b in reasoned.content] == ["thinking", "text", "tool_use"]
    assert reasoned.content[0].thinking == reasoning  # type: ignore[union-attr]
    assert summary(reasoned)[1:] == summary(message)


async def test_an_openai_client_gets_the_call_with_the_think_tag_in_its_arguments(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", json=openai_completion(CALL_TEXT)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, OPEN)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS
        )
    message = completion.choices[0].message
    calls = message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [ARGS]  # type: ignore[union-attr]
    assert message.content == "Writing the helper."


async def test_long_reasoning_stays_out_of_the_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(REASONED)),
        Reply(dialect="openai", events=openai_text_stream(pieces(REASONED, 1000))),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url, OPEN)))
    message, streamed = await unary_and_streamed(d.url, A_KW)
    for answer in (message, streamed):
        assert [b.type for b in answer.content] == ["thinking", "text"]
        assert answer.content[0].thinking == REASONING  # type: ignore[union-attr]
        assert answer.content[1].text == ANSWER  # type: ignore[union-attr]


async def test_long_reasoning_reaches_an_openai_client_as_reasoning(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(pieces(REASONED, 1000))))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, OPEN)))
    async with o_sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS, stream=True
        )
        chunks = [c async for c in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    content = "".join(d.content or "" for d in deltas)
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    assert content == ANSWER
    assert reasoning == REASONING


async def test_long_reasoning_cut_before_its_closing_tag_stays_reasoning(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(REASONING, finish_reason="length"))
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url, OPEN)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW)
    assert [b.type for b in message.content] == ["thinking"]
    assert message.stop_reason == "max_tokens"


# 70 KB: past the 64 KiB the start is held for, far under the 1 MiB a call may be.
BIG_ARGS = {"file_path": "big.txt", "content": "print('x')\n" * 6400}
BIG_CALL = "Writing it.\n<tool_call>" + json.dumps({"name": "Write", "arguments": BIG_ARGS})
BIG_CALL += "</tool_call>"


async def test_a_call_larger_than_the_held_start_is_lifted_when_the_model_did_not_think(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The held start passes its limit inside a call, or after a whole one:
    the model did not think, and the call is lifted, unary and streamed."""
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(BIG_CALL)),
        Reply(dialect="openai", events=openai_text_stream(pieces(BIG_CALL, 1000))),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url, OPEN)))
    unary, streamed = await unary_and_streamed(d.url, A_KW)
    for message in (unary, streamed):
        assert summary(message) == [("text", "Writing it."), ("tool_use", BIG_ARGS)]
        assert message.stop_reason == "tool_use"


# Reasoning that drafts a JSON object at a line's start and gives it up.
DRAFT = (
    "The user wants the settings. Let me draft them as JSON:\n"
    '{\n  "name": "settings",\n  "debug": true,\n  "level":\n'
    "Wait, the user asked for YAML, not JSON. Start over.\n"
)


async def test_reasoning_with_an_abandoned_json_draft_ends_at_its_closing_tag(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """An object that names no tool is no call: the `</think>` after it ends
    the reasoning, unary and streamed."""
    text = DRAFT + "</think>\n\n" + ANSWER
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(text)),
        Reply(dialect="openai", events=openai_text_stream(pieces(text, 7))),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url, OPEN)))
    unary, streamed = await unary_and_streamed(d.url, A_KW)
    for message in (unary, streamed):
        assert summary(message) == [("thinking", None), ("text", ANSWER)]
