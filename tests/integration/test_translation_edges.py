"""The OpenAI-to-Anthropic stream glue at its edges: cuts, error chunks, a missing [DONE]."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from structlog.testing import capture_logs

from coderouterd.wire.sse import SSEDecoder
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_error_body,
    anthropic_message,
    anthropic_text_stream,
    openai_text_stream,
)
from tests.fakes.upstream import Dialect, FakeUpstream, Reply, sse_frame

BODY = {
    "model": "m",
    "max_tokens": 50,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
ERROR_CHUNK = ("", {"error": {"message": "model crashed", "type": "server_error"}})


def oai(name: str, url: str) -> str:
    return provider_yaml(name, url + "/v1", kind="openai_compat")


async def raw_stream(url: str) -> list[tuple[str, dict[str, Any]]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages", json=BODY) as resp,
    ):
        assert resp.status == 200
        data = await resp.read()
    decoder = SSEDecoder()
    events = [(e.event, json.loads(e.data)) for e in decoder.feed(data)]
    assert decoder.pending == b""
    return events


def text_of(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(
        d["delta"].get("text", "") for name, d in events if name == "content_block_delta"
    )


def assert_ends_with_an_error_and_no_clean_end(events: list[tuple[str, dict[str, Any]]]) -> None:
    names = [name for name, _ in events]
    assert names[-1] == "error"
    assert "message_delta" not in names and "message_stop" not in names


async def test_a_cut_before_the_finish_reason_ends_with_an_error_event_not_an_end_turn(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = openai_text_stream(["one ", "two ", "three"])
    fake_upstream.script(Reply(dialect="openai", events=events, disconnect_after_events=3))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    got = await raw_stream(d.url)
    assert text_of(got) == "one two"  # the trailing space waits for more text
    assert_ends_with_an_error_and_no_clean_end(got)
    assert got[-1][1]["error"]["type"] == "api_error"


async def test_a_clean_end_of_body_before_any_finish_reason_is_an_error_too(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = openai_text_stream(["one ", "two"])[:-2]  # no finish_reason, no usage
    fake_upstream.script(Reply(dialect="openai", events=events, omit_message_stop=True))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    got = await raw_stream(d.url)
    assert text_of(got) == "one two"
    assert_ends_with_an_error_and_no_clean_end(got)


async def test_the_anthropic_sdk_raises_on_a_cut_instead_of_returning_a_truncated_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = openai_text_stream(["one ", "two ", "three"])
    fake_upstream.script(Reply(dialect="openai", events=events, disconnect_after_events=3))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            async with client.messages.stream(
                model="m", max_tokens=50, messages=BODY["messages"]
            ) as stream:
                await stream.get_final_message()
    assert "failed mid-stream" in str(info.value)


async def test_a_cut_before_any_content_falls_back_to_the_next_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", events=openai_text_stream(["lost"]), disconnect_after_events=1),
        Reply(dialect="openai", events=openai_text_stream(["from b"])),
    )
    d = await start_daemon(chain_yaml(oai("a", fake_upstream.url), oai("b", fake_upstream.url)))
    got = await raw_stream(d.url)
    assert text_of(got) == "from b"
    assert [name for name, _ in got][-2:] == ["message_delta", "message_stop"]


async def test_an_error_chunk_before_content_falls_back_to_the_next_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    first = [*openai_text_stream([])[:1], ERROR_CHUNK]
    fake_upstream.script(
        Reply(dialect="openai", events=first, omit_message_stop=True),
        Reply(dialect="openai", events=openai_text_stream(["from b"])),
    )
    d = await start_daemon(chain_yaml(oai("a", fake_upstream.url), oai("b", fake_upstream.url)))
    with capture_logs() as logs:
        got = await raw_stream(d.url)
    assert text_of(got) == "from b"
    assert "error" not in [name for name, _ in got]
    done = next(e for e in logs if e["event"] == "request.completed")
    assert [a["provider"] for a in done["attempts"]] == ["a", "b"]
    assert done["attempts"][0]["outcome"] == "failed"
    assert done["attempts"][0]["detail"] == "error event before content: server_error"


async def test_an_error_chunk_after_content_becomes_an_error_event(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The error waits until the client has the text: the stream is committed.
    resume = asyncio.Event()
    events = [*openai_text_stream(["partial answer"])[:2], ERROR_CHUNK]
    fake_upstream.script(
        Reply(
            dialect="openai",
            events=events,
            omit_message_stop=True,
            pause_after_frames=2,
            resume=resume,
        ),
        Reply(dialect="openai", events=openai_text_stream(["never used"])),
    )
    d = await start_daemon(chain_yaml(oai("a", fake_upstream.url), oai("b", fake_upstream.url)))
    decoder = SSEDecoder()
    got: list[tuple[str, dict[str, Any]]] = []
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY) as resp,
    ):
        async for chunk in resp.content.iter_any():
            got += [(e.event, json.loads(e.data)) for e in decoder.feed(chunk)]
            if text_of(got):
                resume.set()
    assert text_of(got) == "partial answer"
    assert_ends_with_an_error_and_no_clean_end(got)
    assert got[-1][1]["error"]["message"] == "model crashed"
    assert fake_upstream.pending == 1  # no fallback after the commit point


async def test_a_finish_reason_then_a_clean_end_without_done_is_a_complete_answer(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = openai_text_stream(["all ", "of it"], prompt_tokens=21, completion_tokens=4)
    fake_upstream.script(Reply(dialect="openai", events=events, omit_message_stop=True))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    with capture_logs() as logs:
        got = await raw_stream(d.url)
    assert text_of(got) == "all of it"
    assert [name for name, _ in got][-2:] == ["message_delta", "message_stop"]
    assert got[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert got[-2][1]["usage"]["output_tokens"] == 4
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["error"] is None and done["usage_estimated"] is False


async def test_a_finish_reason_then_a_clean_end_without_usage_is_complete_and_estimated(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = openai_text_stream(["all of it"], include_usage=False)
    fake_upstream.script(Reply(dialect="openai", events=events, omit_message_stop=True))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    with capture_logs() as logs:
        got = await raw_stream(d.url)
    assert text_of(got) == "all of it"
    assert got[-1][0] == "message_stop"
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["error"] is None and done["usage_estimated"] is True


async def test_a_cut_after_the_finish_reason_is_still_an_error_event(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = openai_text_stream(["all of it"])
    cut = len(events) - 1  # the finish_reason chunk went out, the usage chunk and [DONE] not
    fake_upstream.script(Reply(dialect="openai", events=events, disconnect_after_events=cut))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    got = await raw_stream(d.url)
    assert text_of(got) == "all of it"
    assert_ends_with_an_error_and_no_clean_end(got)


FAST_PINGS = "server: {keepalive_after_s: 0.1, keepalive_interval_s: 0.1}\n"


async def test_pings_while_a_local_backend_is_slow_to_start(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", events=openai_text_stream(["late"]), delay_before_first_event=0.6)
    )
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url), top=FAST_PINGS))
    events = await raw_stream(d.url)
    names = [name for name, _ in events]
    first_real = names.index("message_start")
    assert first_real >= 2 and set(names[:first_real]) == {"ping"}
    assert text_of(events) == "late" and names[-1] == "message_stop"


async def test_pings_while_the_output_filters_hold_back_a_tool_call_written_as_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The model writes its call as text, slowly: nothing of it can go out
    # until it is whole, and the client hears pings meanwhile.
    pieces = ["Reading.\n", "<tool_call>", '{"name": "Read", ', '"arguments": {"file_path": "/x"}}']
    fake_upstream.script(
        Reply(
            dialect="openai",
            events=openai_text_stream([*pieces, "</tool_call>"]),
            delay_between_events=0.15,
        )
    )
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url), top=FAST_PINGS))
    tool = {"name": "Read", "input_schema": {"type": "object", "properties": {}}}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json={**BODY, "tools": [tool]}) as resp,
    ):
        data = await resp.read()
    events = [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(data)]
    names = [name for name, _ in events]
    text_at = names.index("content_block_delta")
    call_at = next(
        i
        for i, (name, d) in enumerate(events)
        if name == "content_block_start" and d["content_block"]["type"] == "tool_use"
    )
    assert events[text_at][1]["delta"] == {"type": "text_delta", "text": "Reading."}
    assert names[text_at + 1 : call_at].count("ping") >= 3
    assert events[call_at][1]["content_block"]["name"] == "Read"
    [stop] = [d for name, d in events if name == "message_delta"]
    assert stop["delta"]["stop_reason"] == "tool_use" and names[-1] == "message_stop"


def frames_of(dialect: Dialect, events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(sse_frame(dialect, name, json.dumps(data).encode()) for name, data in events)


ANTHROPIC_ERROR = ("error", anthropic_error_body("overloaded_error", "model crashed"))
# Each stream path, as (client route, provider kind, what the upstream writes
# first, then its error and the clean end it wrote right after, in one write).
PATHS = {
    "openai-to-anthropic": (
        "/v1/messages",
        "openai_compat",
        frames_of("openai", openai_text_stream(["partial answer"])[:2]),
        frames_of("openai", [ERROR_CHUNK]) + b"data: [DONE]\n\n",
    ),
    "anthropic-passthrough": (
        "/v1/messages",
        "anthropic",
        frames_of("anthropic", anthropic_text_stream(["partial answer"])[:3]),
        frames_of("anthropic", [ANTHROPIC_ERROR, ("message_stop", {"type": "message_stop"})]),
    ),
    "anthropic-to-openai": (
        "/v1/chat/completions",
        "anthropic",
        frames_of("anthropic", anthropic_text_stream(["partial answer"])[:3]),
        frames_of("anthropic", [ANTHROPIC_ERROR, ("message_stop", {"type": "message_stop"})]),
    ),
    "openai-passthrough": (
        "/v1/chat/completions",
        "openai_compat",
        frames_of("openai", openai_text_stream(["partial answer"])[:2]),
        frames_of("openai", [ERROR_CHUNK]) + b"data: [DONE]\n\n",
    ),
}


@pytest.mark.parametrize("path", PATHS)
async def test_nothing_follows_an_error_the_upstream_wrote_with_its_end(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, path: str
) -> None:
    """vLLM and llama.cpp write a failed stream's error chunk and its [DONE] in
    one write: the client's stream ends at the error, not with a clean stop
    after it."""
    route, kind, first, last = PATHS[path]
    fake_upstream.script(Reply(writes=[first, last], delay_between_events=0.2))
    url = fake_upstream.url + ("/v1" if kind == "openai_compat" else "")
    d = await start_daemon(chain_yaml(provider_yaml("local", url, kind=kind)))
    body = {**BODY, "stream_options": {"include_usage": True}} if "openai" in route else BODY
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}{route}", json=body) as resp,
    ):
        assert resp.status == 200
        data = await resp.read()
    events = SSEDecoder().feed(data)
    assert b"partial answer" in data
    if route == "/v1/messages":
        assert events[-1].event == "error"
        assert "message_stop" not in [e.event for e in events]
    else:
        assert b"error" in events[-1].data
        assert b"[DONE]" not in data and b'finish_reason":"stop' not in data


@pytest.mark.parametrize("end", [b"data: [DONE]", b"data: [DONE]\n"])
async def test_a_done_without_its_blank_line_at_the_end_of_the_body_is_a_complete_answer(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, end: bytes
) -> None:
    body = frames_of("openai", openai_text_stream(["all ", "of it"], completion_tokens=4))
    fake_upstream.script(Reply(writes=[body + end]))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    with capture_logs() as logs:
        got = await raw_stream(d.url)
    assert text_of(got) == "all of it"
    assert [name for name, _ in got][-2:] == ["message_delta", "message_stop"]
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["error"] is None and done["usage_estimated"] is False


async def test_an_openai_client_gets_its_done_when_the_upstreams_lacks_its_blank_line(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    body = frames_of("openai", openai_text_stream(["all of it"]))
    fake_upstream.script(Reply(writes=[body + b"data: [DONE]"]))
    d = await start_daemon(chain_yaml(oai("local", fake_upstream.url)))
    async with openai.AsyncOpenAI(base_url=d.url + "/v1", api_key="k", max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == "all of it"


async def test_an_answer_in_a_shape_the_translator_cannot_read_falls_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """An Anthropic answer whose content is not a list, for an OpenAI client:
    the next provider answers, and the traceback is logged, not a bare 500."""
    fake_upstream.script(
        Reply(json={"type": "message", "content": 5.0, "usage": "many"}),
        Reply(json=anthropic_message("from b")),
    )
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    with capture_logs() as logs:
        async with openai.AsyncOpenAI(base_url=d.url + "/v1", api_key="k", max_retries=0) as c:
            raw = await c.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
    assert raw.parse().choices[0].message.content == "from b"
    assert raw.headers["x-coderouter-fallback-reason"] == "a=protocol_error"
    [unreadable] = [e for e in logs if e["event"] == "provider.stream_unreadable"]
    assert unreadable["provider"] == "a" and "Error(" in unreadable["error"]
