"""An OpenAI client's SDK gets each of the upstream's tool calls whole and
at an index of its own, through the output filters of an openai_compat
provider, whatever the backend's way of numbering its calls (WIRE.md:
Ollama reuses index 0, Gemini sends none)."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import local, o_sdk

READ = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return ("", {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})


def fragment(
    args: str, *, index: int | None, id_: str | None = None, name: str | None = None
) -> tuple[str, dict[str, Any]]:
    function = {"arguments": args} | ({"name": name} if name else {})
    call: dict[str, Any] = {"function": function}
    if id_ is not None:
        call |= {"id": id_, "type": "function"}
    if index is not None:
        call["index"] = index
    return chunk({"tool_calls": [call]})


async def sdk_calls(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, fragments: list[tuple[str, Any]]
) -> list[tuple[str | None, str, str]]:
    """The calls the openai SDK's stream helper assembles from the answer."""
    events = [chunk({"role": "assistant", "content": ""}), *fragments, chunk({}, "tool_calls")]
    fake_upstream.script(Reply(dialect="openai", events=events))
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    async with (
        o_sdk(d.url) as client,
        client.chat.completions.stream(
            model="local", messages=[{"role": "user", "content": "read a and b"}], tools=READ
        ) as stream,
    ):
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    return [(c.id, c.function.name, c.function.arguments) for c in calls]


async def test_whole_calls_on_a_reused_index_with_new_ids_stay_two_calls(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Ollama: each call whole, all at index 0, each with its own id."""
    got = await sdk_calls(
        start_daemon,
        fake_upstream,
        [
            fragment('{"path":"a"}', index=0, id_="call_a", name="Read"),
            fragment('{"path":"b"}', index=0, id_="call_b", name="Read"),
        ],
    )
    assert got == [("call_a", "Read", '{"path":"a"}'), ("call_b", "Read", '{"path":"b"}')]


async def test_a_call_streamed_on_a_reused_index_keeps_its_later_fragments(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The second call at index 0 streams its arguments in pieces without an
    id: they follow it, not the first call."""
    got = await sdk_calls(
        start_daemon,
        fake_upstream,
        [
            fragment('{"path":"a"}', index=0, id_="call_a", name="Read"),
            fragment("", index=0, id_="call_b", name="Read"),
            fragment('{"path"', index=0),
            fragment(':"b"}', index=0),
        ],
    )
    assert got == [("call_a", "Read", '{"path":"a"}'), ("call_b", "Read", '{"path":"b"}')]


async def test_whole_calls_on_a_reused_index_without_ids_are_told_apart_by_name(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Whole calls, all at index 0 and without ids: a name after whole
    arguments starts the next call (the SDK has no id to give them)."""
    got = await sdk_calls(
        start_daemon,
        fake_upstream,
        [
            fragment('{"path":"a"}', index=0, name="Read"),
            fragment('{"path":"b"}', index=0, name="Read"),
        ],
    )
    assert [(name, args) for _, name, args in got] == [
        ("Read", '{"path":"a"}'),
        ("Read", '{"path":"b"}'),
    ]


async def test_calls_without_an_index_are_numbered_in_the_order_they_start(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Gemini: no index at all. A new id starts a call; a fragment with
    neither id nor name continues the current one."""
    got = await sdk_calls(
        start_daemon,
        fake_upstream,
        [
            fragment('{"path":"a"}', index=None, id_="a", name="Read"),
            fragment("", index=None, id_="b", name="Read"),
            fragment('{"path":', index=None),
            fragment('"b"}', index=None),
        ],
    )
    assert got == [("a", "Read", '{"path":"a"}'), ("b", "Read", '{"path":"b"}')]


async def test_calls_without_an_index_or_id_start_at_each_name(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    got = await sdk_calls(
        start_daemon,
        fake_upstream,
        [
            fragment('{"path":"a"}', index=None, name="Read"),
            fragment('{"path":"b"}', index=None, name="Read"),
        ],
    )
    assert [(name, args) for _, name, args in got] == [
        ("Read", '{"path":"a"}'),
        ("Read", '{"path":"b"}'),
    ]


async def test_a_text_lifted_call_and_reused_index_calls_get_rising_indices(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A call the repair lifts out of the text takes the first index; the
    upstream's two calls at index 0 take the next two."""
    lifted = '<tool_call>{"name": "Read", "arguments": {"path": "x"}}</tool_call>'
    got = await sdk_calls(
        start_daemon,
        fake_upstream,
        [
            chunk({"content": lifted}),
            fragment('{"path":"a"}', index=0, id_="call_a", name="Read"),
            fragment('{"path":"b"}', index=0, id_="call_b", name="Read"),
        ],
    )
    assert [(name, args) for _, name, args in got] == [
        ("Read", '{"path":"x"}'),
        ("Read", '{"path":"a"}'),
        ("Read", '{"path":"b"}'),
    ]
    assert [call_id for call_id, _, _ in got][1:] == ["call_a", "call_b"]
