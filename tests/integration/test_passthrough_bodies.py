"""Same-dialect passthrough, bodies that are not what they say: an upstream
error whose body is not JSON reaches the client in its own error envelope,
and a 2xx whose body is no JSON object falls through to the next provider
like a broken stream."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import msgspec
import openai
import pytest

from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, o_sdk

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
FILTERS_OFF = (
    "output_filters: {think: 'off', strip_tool_markup: false, repair_tool_calls: false,"
    " strip_stop_markers: false}"
)
FILTERS_ON = "output_filters: {think: thinking, strip_stop_markers: true}"
HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


# An upstream error status: its JSON body as it is, any other body wrapped.


async def test_a_text_error_from_an_openai_compat_provider_is_an_openai_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # What Ollama answers on a wrong base_url.
    text = Reply(status=404, raw_body=b"404 page not found", headers={"Content-Type": "text/plain"})
    fake_upstream.script(text)
    d = await start_daemon(
        chain_yaml(provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    async with o_sdk(d.url) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="x", messages=MESSAGES)
    assert caught.value.response.headers["content-type"].startswith("application/json")
    assert caught.value.body == {
        "message": "404 page not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }


async def test_an_html_error_from_an_anthropic_provider_is_an_anthropic_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    page = b"<html><body>404 Not Found</body></html>\n"
    fake_upstream.script(Reply(status=404, raw_body=page, headers={"Content-Type": "text/html"}))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with a_sdk(d.url) as client:
        with pytest.raises(anthropic.NotFoundError) as caught:
            await client.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    assert caught.value.response.headers["content-type"].startswith("application/json")
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": page.decode().strip()},
        # Written by the daemon, so with its request id, as its own errors are.
        "request_id": caught.value.response.headers["x-request-id"],
    }


@pytest.mark.parametrize("kind", ["anthropic", "openai_compat"])
async def test_a_json_error_from_the_provider_is_returned_byte_for_byte(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, kind: str
) -> None:
    body = b'{"type": "error", "error": {"message": "no such model", "type": "invalid_request_error"}, "x": 1}'
    fake_upstream.script(Reply(status=400, raw_body=body))
    url = fake_upstream.url + ("/v1" if kind == "openai_compat" else "")
    d = await start_daemon(chain_yaml(provider_yaml("p", url, kind=kind)))
    path = "/v1/chat/completions" if kind == "openai_compat" else "/v1/messages"
    request = {"model": "m", "max_tokens": 10, "messages": MESSAGES}
    async with aiohttp.ClientSession() as http, http.post(d.url + path, json=request) as resp:
        assert (resp.status, await resp.read()) == (400, body)


# A 2xx that is no answer.

BAD_BODIES = {
    "html": HTML,
    "cut_json": b'{"id": "x", "choices": [{"index": 0, "message": {"content": "par',
    "not_an_object": b"[]",
}
# (client, provider kind, the provider's output_filters)
PATHS = {
    "anthropic": ("anthropic", "anthropic", ""),
    "anthropic_filtered": ("anthropic", "anthropic", FILTERS_ON),
    "openai_filtered": ("openai", "openai_compat", ""),
    "openai": ("openai", "openai_compat", FILTERS_OFF),
}


async def two_providers(
    start_daemon: StartDaemon, a: FakeUpstream, b: FakeUpstream, kind: str, extra: str
) -> RunningDaemon:
    prefix = "/v1" if kind == "openai_compat" else ""
    return await start_daemon(
        chain_yaml(
            provider_yaml("a", a.url + prefix, kind=kind, extra=extra),
            provider_yaml("b", b.url + prefix, kind=kind, extra=extra),
        )
    )


async def answer(d: RunningDaemon, client: str) -> tuple[str, Any]:
    """The text of the answer and the response headers, through the client's SDK."""
    if client == "anthropic":
        async with a_sdk(d.url) as a:
            raw = await a.messages.with_raw_response.create(
                model="m", max_tokens=10, messages=MESSAGES
            )
            block = (await raw.parse()).content[0]
        return (block.text if block.type == "text" else ""), raw.headers
    async with o_sdk(d.url) as o:
        raw_o = await o.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    return raw_o.parse().choices[0].message.content or "", raw_o.headers


@pytest.mark.parametrize("bad", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
async def test_a_2xx_whose_body_is_no_json_object_falls_through(
    start_daemon: StartDaemon, path: tuple[str, str, str], bad: bytes
) -> None:
    client, kind, extra = path
    good = (
        Reply(json=anthropic_message("from b"))
        if kind == "anthropic"
        else Reply(json=openai_completion("from b"), dialect="openai")
    )
    async with FakeUpstream() as a, FakeUpstream(default=good) as b:
        a.script(Reply(raw_body=bad, headers={"Content-Type": "text/html"}))
        d = await two_providers(start_daemon, a, b, kind, extra)
        text, headers = await answer(d, client)
    assert text == "from b"
    assert headers["x-coderouter-provider"] == "b"
    assert headers["x-coderouter-fallback-reason"] == "a=protocol_error"
    # A failure, not a success that would end a's failure streak.
    assert d.daemon.healing.book.health("a").streak == 1


async def test_a_json_answer_without_usage_is_still_forwarded_as_bytes(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    completion = openai_completion("fine")
    del completion["usage"]
    body = msgspec.json.encode(completion)
    fake_upstream.script(Reply(raw_body=body))
    d = await start_daemon(
        chain_yaml(
            provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat", extra=FILTERS_OFF)
        )
    )
    request = {"model": "m", "messages": MESSAGES}
    async with (
        aiohttp.ClientSession() as http,
        http.post(d.url + "/v1/chat/completions", json=request) as resp,
    ):
        assert (resp.status, resp.headers["x-coderouter-provider"]) == (200, "o")
        assert await resp.read() == body
