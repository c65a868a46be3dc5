"""How a passthrough stream's end reaches the client: an upstream error after
the commit point in a field the client reads, a `[DONE]` before any content
as no answer, and bytes after Anthropic's `message_stop` as none of it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest

from coderouterd.wire.sse import SSEDecoder
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_text_stream, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply, sse_frame

ANTHROPIC_BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
OPENAI_BODY: dict[str, Any] = {
    "model": "m",
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
NO_FILTERS = (
    "output_filters: {think: off, repair_tool_calls: false, strip_tool_markup: false,"
    " strip_stop_markers: false}"
)
FILTERS = pytest.mark.parametrize("filters", ["", NO_FILTERS], ids=["filters-on", "filters-off"])
# llama.cpp before late 2025: a stream's error as an `error:` field.
ERROR_FIELD = (
    b"error: "
    + json.dumps(
        {"code": 500, "message": "slot 0 failed: decode error", "type": "server_error"}
    ).encode()
    + b"\n\n"
)


def openai_provider(name: str, url: str, extra: str = "") -> str:
    return provider_yaml(name, url + "/v1", kind="openai_compat", extra=extra)


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(data).encode() + b"\n\n"


async def post(url: str, path: str, body: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}{path}", json=body, timeout=aiohttp.ClientTimeout(total=15)) as resp,
    ):
        assert resp.status == 200
        return dict(resp.headers), await resp.read()


def frames(data: bytes) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for e in SSEDecoder().feed(data):
        try:
            out.append((e.event, json.loads(e.data)))
        except ValueError:
            out.append((e.event, e.data.decode()))
    return out


def text_and_error_field() -> Reply:
    return Reply(
        dialect="openai",
        writes=[
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hello"}),
            ERROR_FIELD,
        ],
        delay_between_events=0.05,
    )


@FILTERS
async def test_an_error_field_after_content_reaches_an_openai_client_as_a_data_error_chunk(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, filters: str
) -> None:
    # Forwarded as the `error:` line it came as, SSE clients would skip it
    # and read "Hello" as the whole answer.
    fake_upstream.script(text_and_error_field())
    d = await start_daemon(chain_yaml(openai_provider("o", fake_upstream.url, filters)))
    _, raw = await post(d.url, "/v1/chat/completions", OPENAI_BODY)
    assert not any(line.startswith(b"error:") for line in raw.splitlines()), raw
    *_, (name, last) = frames(raw)
    assert (name, last) == (
        "message",
        {"error": {"code": 500, "message": "slot 0 failed: decode error", "type": "server_error"}},
    )


@FILTERS
async def test_the_openai_sdk_raises_on_an_error_field_after_content(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, filters: str
) -> None:
    fake_upstream.script(text_and_error_field())
    d = await start_daemon(chain_yaml(openai_provider("o", fake_upstream.url, filters)))
    client = openai.AsyncOpenAI(
        base_url=f"{d.url}/v1", api_key="client-key", max_retries=0, timeout=10
    )
    text = ""
    async with client:
        stream = await client.chat.completions.create(
            model="m", messages=OPENAI_BODY["messages"], stream=True
        )
        with pytest.raises(openai.APIError, match="slot 0 failed"):
            async for c in stream:
                text += c.choices[0].delta.content or "" if c.choices else ""
    assert text == "Hello"


async def test_text_read_with_the_error_field_goes_through_the_filters_first(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The chunk before the error arrives in the same read: filtered like any
    # other (its stop marker stripped), not passed on as it came.
    fake_upstream.script(
        Reply(
            dialect="openai",
            writes=[
                chunk({"role": "assistant", "content": "Hello"}),
                chunk({"content": " world<|im_end|>"}) + ERROR_FIELD,
            ],
            delay_between_events=0.05,
        )
    )
    d = await start_daemon(chain_yaml(openai_provider("o", fake_upstream.url)))
    _, raw = await post(d.url, "/v1/chat/completions", OPENAI_BODY)
    assert b"im_end" not in raw
    chunks = [c for _, c in frames(raw) if isinstance(c, dict) and c.get("choices")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello world"
    assert "error" in frames(raw)[-1][1]


@FILTERS
async def test_done_before_any_content_falls_through_to_the_next_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, filters: str
) -> None:
    # A role chunk, then [DONE]: nothing said, no finish_reason (a request
    # the server aborted). No answer: `b` is tried.
    fake_upstream.script(
        Reply(
            dialect="openai",
            writes=[chunk({"role": "assistant", "content": ""}), b"data: [DONE]\n\n"],
        ),
        Reply(dialect="openai", events=openai_text_stream(["from b"])),
    )
    d = await start_daemon(
        chain_yaml(
            openai_provider("a", fake_upstream.url, filters),
            openai_provider("b", fake_upstream.url, filters),
        )
    )
    headers, raw = await post(d.url, "/v1/chat/completions", OPENAI_BODY)
    assert headers["x-coderouter-provider"] == "b"
    assert headers["x-coderouter-fallback-reason"] == "a=protocol_error"
    chunks = [c for _, c in frames(raw) if isinstance(c, dict) and c.get("choices")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "from b"


async def test_a_finish_reason_alone_then_done_is_a_whole_empty_answer(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The model said nothing, but said why it stopped: an answer.
    fake_upstream.script(
        Reply(
            dialect="openai",
            writes=[
                chunk({"role": "assistant", "content": ""}),
                chunk({}, "stop"),
                b"data: [DONE]\n\n",
            ],
        )
    )
    d = await start_daemon(chain_yaml(openai_provider("a", fake_upstream.url, NO_FILTERS)))
    headers, raw = await post(d.url, "/v1/chat/completions", OPENAI_BODY)
    assert headers["x-coderouter-provider"] == "a"
    assert frames(raw)[-1] == ("message", "[DONE]")


async def test_a_trailer_after_message_stop_in_the_same_chunk_leaves_the_answer_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # A gateway's OpenAI habit: `data: [DONE]` after `message_stop`, here in
    # the same write; in a later one the daemon never reads it.
    events = anthropic_text_stream(["all ", "of it"])
    body = [sse_frame("anthropic", n, json.dumps(e).encode()) for n, e in events]
    fake_upstream.script(
        Reply(writes=[*body[:-1], body[-1] + b"data: [DONE]\n\n"], delay_between_events=0.05)
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    _, raw = await post(d.url, "/v1/messages", ANTHROPIC_BODY)
    names = [n for n, _ in frames(raw)]
    assert names[-1] == "message_stop", raw[-400:]
    assert "error" not in names
    assert b"[DONE]" not in raw
