"""Markup stripping without repair (`repair_tool_calls: false`): a
`<tool_call>` block calling a tool the request offered keeps its text, only
the tags go; only a call to a tool the request did not offer goes whole."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]
SCHEMA = {"type": "object", "properties": {"file_path": {"type": "string"}}}
A_TOOLS: list[Any] = [{"name": "Read", "description": "read a file", "input_schema": SCHEMA}]
O_TOOLS: list[Any] = [{"type": "function", "function": {"name": "Read", "parameters": SCHEMA}}]
A_KW: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": A_TOOLS}
CALL = '{"name": "Read", "arguments": {"file_path": "/a.py"}}'
TEXT = "I will read it.\n<tool_call>" + CALL + "</tool_call>"
NO_REPAIR = "output_filters: {repair_tool_calls: false}"


def texts(message: Any) -> list[str]:
    return [b.text for b in message.content if b.type == "text"]


async def test_an_anthropic_client_keeps_the_text_of_a_call_to_an_offered_tool(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", json=openai_completion(TEXT)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, NO_REPAIR)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW)
    assert texts(message) == ["I will read it.\n" + CALL]
    assert message.stop_reason == "end_turn"


async def test_a_streamed_call_to_an_offered_tool_keeps_its_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    pieces = [TEXT[i : i + 7] for i in range(0, len(TEXT), 7)]
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(pieces)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, NO_REPAIR)))
    async with a_sdk(d.url) as client, client.messages.stream(**A_KW) as stream:
        message = await stream.get_final_message()
    assert texts(message) == ["I will read it.\n" + CALL]


async def test_an_openai_client_keeps_the_text_of_a_call_to_an_offered_tool(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", json=openai_completion(TEXT)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, NO_REPAIR)))
    async with o_sdk(d.url) as client:
        completion = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS
        )
    message = completion.choices[0].message
    assert message.content == "I will read it.\n" + CALL
    assert not message.tool_calls


async def test_a_call_to_an_offered_tool_keeps_its_text_beside_one_to_a_tool_not_offered(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    other = '<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>'
    fake_upstream.script(Reply(dialect="openai", json=openai_completion(TEXT + "\n" + other)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, NO_REPAIR)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW)
    assert "".join(texts(message)).strip() == "I will read it.\n" + CALL


async def test_a_call_to_an_offered_tool_the_model_may_not_call_now_keeps_its_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Under `tool_choice: none` Read is offered but not callable: the call
    printed as text is not lifted (repair on), nor dropped as a call to a
    tool never offered; its text stays, without the tags."""
    fake_upstream.script(Reply(dialect="openai", json=openai_completion(TEXT)))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with a_sdk(d.url) as client:
        message = await client.messages.create(**A_KW, tool_choice={"type": "none"})
    assert texts(message) == ["I will read it.\n" + CALL]
    assert message.stop_reason == "end_turn"


async def test_an_openai_client_keeps_the_text_of_a_call_to_a_tool_it_may_not_call_now(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The passthrough's filters: under `tool_choice: "none"`, and for a
    tool declared as a legacy function (a call is lifted only as a `tools`
    entry), the printed call's text stays."""
    fake_upstream.script(
        Reply(dialect="openai", json=openai_completion(TEXT)),
        Reply(dialect="openai", json=openai_completion(TEXT)),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    legacy = [{"name": "Read", "parameters": SCHEMA}]
    async with o_sdk(d.url) as client:
        none = await client.chat.completions.create(
            model="m", messages=MESSAGES, tools=O_TOOLS, tool_choice="none"
        )
        functions = await client.chat.completions.create(
            model="m", messages=MESSAGES, functions=legacy
        )
    for completion in (none, functions):
        message = completion.choices[0].message
        assert message.content == "I will read it.\n" + CALL
        assert not message.tool_calls
