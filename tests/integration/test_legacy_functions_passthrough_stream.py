"""A streamed legacy `function_call` through the OpenAI passthrough: its
deltas are content, for the first-byte timeout and for `[DONE]`, as a
streamed `tool_calls` answer's are."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import o_sdk

FUNCTIONS = [
    {
        "name": "write_file",
        "description": "write a file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "text": {"type": "string"}},
        },
    }
]
PIECES = ['{"path": "a.py", ', '"text": "print(1)', "\\nprint(2)", "\\nprint(3)", '"}']


def _chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return "", {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}


def _function_call_stream(*, finish: bool) -> list[tuple[str, dict[str, Any]]]:
    head = {"role": "assistant", "content": None}
    events = [_chunk({**head, "function_call": {"name": "write_file", "arguments": ""}})]
    events += [_chunk({"function_call": {"arguments": p}}) for p in PIECES]
    return [*events, _chunk({}, "function_call")] if finish else events


async def _streamed_arguments(url: str) -> tuple[str, str | None]:
    client = o_sdk(url)
    try:
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "write a.py"}],
            functions=FUNCTIONS,
            stream=True,
        )
        args, finish = "", None
        async for chunk in stream:
            for c in chunk.choices:
                if c.delta.function_call and c.delta.function_call.arguments:
                    args += c.delta.function_call.arguments
                finish = c.finish_reason or finish
    finally:
        await client.close()
    return args, finish


async def test_a_steady_function_call_is_not_a_first_byte_timeout(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The call starts at once and flows a chunk every 0.25 s, 1.5 s in all:
    the 0.6 s first-byte timeout is met by its first chunk."""
    fake_upstream.script(
        Reply(
            dialect="openai",
            events=_function_call_stream(finish=True),
            delay_between_events=0.25,
        )
    )
    extra = "timeouts: {first_byte_s: 0.6}"
    p = provider_yaml("a", fake_upstream.url, kind="openai_compat", extra=extra)
    d = await start_daemon(chain_yaml(p))
    assert await _streamed_arguments(d.url) == ("".join(PIECES), "function_call")


async def test_a_function_call_then_done_without_finish_reason_is_kept(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`[DONE]` after a whole call with no finish_reason chunk ends an answer:
    it is not "[DONE] before any content", to fall through to nothing."""
    fake_upstream.script(Reply(dialect="openai", events=_function_call_stream(finish=False)))
    p = provider_yaml("a", fake_upstream.url, kind="openai_compat")
    d = await start_daemon(chain_yaml(p))
    assert (await _streamed_arguments(d.url))[0] == "".join(PIECES)
