"""Anthropic clients on OpenAI-compatible providers: what the answer says.

Failures that come in a 200 fall through, cut calls are `max_tokens`,
stop sequences are named, tool_use ids never repeat across answers, and
streamed arguments reach the SDK in a form it can parse. The daemon runs in
process against the scripted fake upstream; the official `anthropic` SDK
is the client.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

HI: list[Any] = [{"role": "user", "content": "hi"}]
BASH_TOOL = {
    "name": "Bash",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}


def oai(name: str, url: str, extra: str = "") -> str:
    return provider_yaml(name, url + "/v1", kind="openai_compat", extra=extra)


def chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> tuple[str, Any]:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}],
    }
    return ("", body)


ROLE = chunk({"role": "assistant", "content": ""})


def text_stream(text: str) -> Reply:
    return Reply(dialect="openai", events=[ROLE, chunk({"content": text}), chunk({}, "stop")])


def call_stream(call_id: str, arguments: str, finish: str = "tool_calls") -> Reply:
    fragment = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": "Bash", "arguments": arguments},
    }
    events = [ROLE, chunk({"tool_calls": [fragment]}), chunk({}, finish)]
    return Reply(dialect="openai", events=events)


def call_completion(call_id: str, arguments: str, finish: str = "tool_calls") -> dict[str, Any]:
    body = openai_completion("", finish_reason=finish)
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "Bash", "arguments": arguments},
            }
        ],
    }
    return body


def client(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=10)


async def answer(url: str, *, stream: bool, **kwargs: Any) -> anthropic.types.Message:
    kwargs.setdefault("messages", HI)
    async with client(url) as c:
        if not stream:
            return await c.messages.create(model="m", max_tokens=100, **kwargs)
        async with c.messages.stream(model="m", max_tokens=100, **kwargs) as s:
            return await s.get_final_message()


def texts(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def uses(message: anthropic.types.Message) -> list[anthropic.types.ToolUseBlock]:
    return [b for b in message.content if b.type == "tool_use"]


# A failure in a 200.


@pytest.mark.parametrize(
    "body",
    [
        # OpenRouter's word for an error met once the model started.
        {"error": {"code": 502, "message": "Provider returned error", "metadata": {}}},
        {"id": "chatcmpl-1", "object": "chat.completion", "choices": []},
    ],
    ids=["openrouter_error", "no_choices"],
)
async def test_a_200_body_that_is_no_completion_falls_through_to_the_next_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, body: dict[str, Any]
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json=body),
        Reply(dialect="openai", json=openai_completion("from b")),
    )
    d = await start_daemon(chain_yaml(oai("a", fake_upstream.url), oai("b", fake_upstream.url)))
    async with client(d.url) as c:
        raw = await c.messages.with_raw_response.create(model="m", max_tokens=100, messages=HI)
    assert texts(await raw.parse()) == "from b"
    assert raw.headers["x-coderouter-provider"] == "b"
    assert raw.headers["x-coderouter-fallback-reason"] == "a=protocol_error"


@pytest.mark.parametrize("filters", ["on", "off"])
async def test_an_openai_client_falls_through_a_200_error_body_too(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, filters: str
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json={"error": {"code": 502, "message": "Provider error"}}),
        Reply(dialect="openai", json=openai_completion("from b")),
    )
    off = "output_filters: {think: 'off', strip_tool_markup: false, repair_tool_calls: false}"
    extra = off if filters == "off" else ""
    d = await start_daemon(
        chain_yaml(oai("a", fake_upstream.url, extra), oai("b", fake_upstream.url, extra))
    )
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as o:
        raw = await o.chat.completions.with_raw_response.create(model="m", messages=HI)
    assert raw.parse().choices[0].message.content == "from b"
    assert raw.headers["x-coderouter-fallback-reason"] == "a=protocol_error"


async def test_a_stream_of_nothing_but_done_falls_through_to_the_next_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Only the role chunk, then [DONE]: no text, no finish_reason, no answer."""
    fake_upstream.script(Reply(dialect="openai", events=[ROLE]), text_stream("from b"))
    d = await start_daemon(chain_yaml(oai("a", fake_upstream.url), oai("b", fake_upstream.url)))
    message = await answer(d.url, stream=True)
    assert texts(message) == "from b"
    assert len(fake_upstream.requests) == 2


# The end of the body.


LAST_FRAME_WITHOUT_BLANK_LINE = [
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},'
    b'"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    # The usage chunk, no [DONE], one newline, then a clean end of the body.
    b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}\n',
]


async def test_a_last_frame_without_its_blank_line_after_the_finish_reason_ends_cleanly(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", writes=LAST_FRAME_WITHOUT_BLANK_LINE))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    message = await answer(d.url, stream=True)
    assert texts(message) == "Hello"
    assert message.stop_reason == "end_turn"
    # The frame was read: its usage, not an estimate.
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 1)


async def test_an_openai_client_gets_the_same_stream_whole_too(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The passthrough reads the end of the body by the same rule."""
    import openai  # noqa: PLC0415 - only this test is an OpenAI client

    fake_upstream.script(Reply(dialect="openai", writes=LAST_FRAME_WITHOUT_BLANK_LINE))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    async with openai.AsyncOpenAI(base_url=d.url + "/v1", api_key="k", max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [ch async for ch in stream]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Hello"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 1


# Why the model stopped.


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
async def test_a_call_cut_at_max_tokens_is_stop_reason_max_tokens(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """Anthropic says `max_tokens` for a call cut short, and a client must not run it."""
    args = '{"command": "rm -rf build && echo do'
    reply = (
        call_stream("call_1", args, "length")
        if stream
        else Reply(dialect="openai", json=call_completion("call_1", args, "length"))
    )
    fake_upstream.script(reply)
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    message = await answer(d.url, stream=stream, tools=[BASH_TOOL])
    assert message.stop_reason == "max_tokens"
    [use] = uses(message)
    assert use.input == {"_raw": args}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
async def test_a_stop_sequence_the_backend_names_is_stop_reason_stop_sequence(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """vLLM names the stop string it matched in the choice's `stop_reason`."""
    if stream:
        events = [
            ROLE,
            chunk({"content": "<answer>42"}),
            chunk({}, "stop", stop_reason="</answer>"),
        ]
        reply = Reply(dialect="openai", events=events)
    else:
        body = openai_completion("<answer>42")
        body["choices"][0]["stop_reason"] = "</answer>"
        reply = Reply(dialect="openai", json=body)
    fake_upstream.script(reply)
    d = await start_daemon(chain_yaml(oai("vllm", fake_upstream.url)))
    message = await answer(d.url, stream=stream, stop_sequences=["</answer>", "STOP"])
    assert fake_upstream.requests[0].json["stop"] == ["</answer>", "STOP"]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "</answer>")


# Tool calls.


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
async def test_a_call_id_the_backend_repeats_is_new_each_turn_and_results_still_pair(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """Backends that number calls per answer (`call_0`, Kimi's
    `functions.Bash:0`) name each turn's call alike; Anthropic refuses a
    history with a tool_use id twice, and Claude Code pairs results by id."""

    def reply(arguments: str) -> Reply:
        if stream:
            return call_stream("functions.Bash:0", arguments)
        return Reply(dialect="openai", json=call_completion("functions.Bash:0", arguments))

    fake_upstream.script(reply('{"command": "ls"}'), reply('{"command": "date"}'))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    history: list[Any] = [{"role": "user", "content": "list files, then show the date"}]
    first = await answer(d.url, stream=stream, messages=history, tools=[BASH_TOOL])
    [call] = uses(first)
    history += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "a.py"}],
        },
    ]
    second = await answer(d.url, stream=stream, messages=history, tools=[BASH_TOOL])
    [again] = uses(second)
    assert again.input == {"command": "date"}
    assert again.id != call.id
    # The backend gets the call and its result under the one id the client holds.
    sent = fake_upstream.requests[1].json["messages"]
    [assistant] = [m for m in sent if m["role"] == "assistant"]
    [tool] = [m for m in sent if m["role"] == "tool"]
    assert assistant["tool_calls"][0]["id"] == tool["tool_call_id"] == call.id
    assert tool["content"] == "a.py"


@pytest.mark.parametrize("arguments", ["{'command': 'ls'}", '{"command": "ls"'])
async def test_streamed_arguments_that_are_not_json_reach_the_sdk_as_raw(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, arguments: str
) -> None:
    """A Python dict, or JSON cut short: the SDK's stream helper raises on
    such a call; the non-streaming path gives `{"_raw": …}`, and so does
    the stream."""
    fake_upstream.script(call_stream("call_1", arguments))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    message = await answer(d.url, stream=True, tools=[BASH_TOOL])
    [use] = uses(message)
    assert (use.name, use.input) == ("Bash", {"_raw": arguments})
    assert message.stop_reason == "tool_use"
