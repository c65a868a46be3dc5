"""A tool call whose whole input came in its content_block_start reaches an
OpenAI client with those arguments."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_usage
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import o_sdk as sdk

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "read",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def _stream_with_input_in_start() -> list[tuple[str, dict[str, Any]]]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "m",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": anthropic_usage(10, 1),
    }
    block = {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "/etc/x"}}
    return [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        # An empty fragment, as Anthropic itself sends first: it adds nothing.
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": ""},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 7},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


async def test_a_start_carrying_the_input_then_an_empty_fragment_keeps_the_arguments(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A tool_use start that carries its whole input (as some
    Anthropic-compatible servers send it) keeps it through an empty
    input_json_delta: the OpenAI client gets `{"path":"/etc/x"}`, as a whole
    answer of the same message has it, not `{}`."""
    fake_upstream.default = Reply(events=_stream_with_input_in_start())
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    async with (
        sdk(d.url) as client,
        client.chat.completions.stream(
            model="m", messages=[{"role": "user", "content": "read it"}], tools=TOOLS
        ) as stream,
    ):
        final = await stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.function.name == "read"
    assert call.function.arguments == '{"path":"/etc/x"}'
