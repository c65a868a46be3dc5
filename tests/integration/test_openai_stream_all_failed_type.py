"""An error the daemon writes into an OpenAI client's stream names an error
type of OpenAI's (`server_error`), not Anthropic's (`overloaded_error`,
`api_error`), which no OpenAI client or SDK knows."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_text_stream, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

FAST_PINGS = "server: {keepalive_after_s: 0.1, keepalive_interval_s: 0.1}\n"
ASK = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def chat_stream(url: str) -> bytes:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/v1/chat/completions", json=ASK, timeout=aiohttp.ClientTimeout(total=15)
        ) as resp,
    ):
        assert resp.status == 200
        return await resp.read()


def last_error(raw: bytes) -> dict[str, Any]:
    last = raw.rstrip().rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b"data: "), raw[-300:]
    error: dict[str, Any] = json.loads(last[len(b"data: ") :])["error"]
    return error


async def test_all_failed_after_keepalives_is_a_server_error_for_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A slow first provider lets keep-alive comments out (the 200 with
    them), then every provider fails: the all-failed error goes in-stream,
    of the type the same client gets in a 503 without the comments."""
    fake_upstream.script(Reply(events=anthropic_text_stream(["x"]), delay_before_first_event=0.4))
    fake_upstream.default = anthropic_error(503, "overloaded_error", "busy")
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url, extra="timeouts: {first_byte_s: 0.3}"),
            provider_yaml("b", fake_upstream.url),
            top=FAST_PINGS,
        )
    )
    raw = await chat_stream(d.url)
    assert raw.startswith(b": keep-alive\n\n")
    error = last_error(raw)
    assert error["type"] == "server_error", error
    assert "no provider of profile 'default'" in error["message"]


@pytest.mark.parametrize("kind", ["openai_compat", "anthropic"])
async def test_a_stream_cut_after_content_ends_with_a_server_error_for_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, kind: str
) -> None:
    """Passed through from an OpenAI-compatible backend, or translated from an
    Anthropic one: the error frame the cut owes the client is the daemon's."""
    if kind == "anthropic":
        events, url = anthropic_text_stream(["a", "b", "c"]), fake_upstream.url
        fake_upstream.script(Reply(events=events, disconnect_after_events=4))
    else:
        events, url = openai_text_stream(["a", "b", "c"]), fake_upstream.url + "/v1"
        fake_upstream.script(Reply(events=events, dialect="openai", disconnect_after_events=3))
    d = await start_daemon(chain_yaml(provider_yaml("p", url, kind=kind)))
    raw = await chat_stream(d.url)
    assert b'"content":"a"' in raw
    error = last_error(raw)
    assert error["type"] == "server_error", error
    assert "failed mid-stream" in error["message"]
