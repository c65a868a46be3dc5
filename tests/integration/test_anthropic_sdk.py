"""The official anthropic SDK against the daemon, against scripted fake upstreams."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]


def sdk(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0, timeout=10)


async def test_non_streaming_message_is_forwarded(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("hi there")))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with sdk(d.url) as client:
        raw = await client.messages.with_raw_response.create(
            model="anything", max_tokens=10, messages=MESSAGES
        )
    msg = await raw.parse()
    assert msg.content[0].text == "hi there"
    assert raw.headers["x-coderouter-provider"] == "a"
    assert raw.headers["x-request-id"]
    sent = fake_upstream.requests[0]
    assert sent.json["model"] == "a-model"
    assert sent.json["messages"] == MESSAGES


async def test_streaming_message_assembles(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["Hel", "lo", "!"])))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with (
        sdk(d.url) as client,
        client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream,
    ):
        message = await stream.get_final_message()
    assert message.content[0].text == "Hello!"
    assert message.stop_reason == "end_turn"


async def test_fallback_before_first_byte(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        anthropic_error(529, "overloaded_error", "busy"),
        Reply(events=anthropic_text_stream(["ok"])),
    )
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    async with (
        sdk(d.url) as client,
        client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream,
    ):
        message = await stream.get_final_message()
        headers = stream.response.headers
    assert message.content[0].text == "ok"
    assert headers["x-coderouter-provider"] == "b"
    assert headers["x-coderouter-fallback-path"] == "a,b"
    assert headers["x-coderouter-fallback-reason"] == "a=http_529"


async def test_client_error_is_returned_not_retried(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(anthropic_error(400, "invalid_request_error", "bad thing"))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    async with sdk(d.url) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    assert "bad thing" in str(info.value)
    assert len(fake_upstream.requests) == 1


async def test_events_are_forwarded_as_they_arrive(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The upstream stops after the first text delta until the client has
    # seen it: a proxy that buffered the stream would never deliver it.
    resume = asyncio.Event()
    fake_upstream.script(
        Reply(
            events=anthropic_text_stream(["first", " second"]),
            pause_after_frames=3,
            resume=resume,
        )
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with (
        sdk(d.url) as client,
        client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream,
    ):
        texts = aiter(stream.text_stream)
        assert await asyncio.wait_for(anext(texts), timeout=5) == "first"
        resume.set()
        assert [t async for t in texts] == [" second"]


async def test_each_provider_reuses_its_own_pooled_connection(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Both providers on the same host and port: a session shared between them
    # would carry every request over one connection.
    fake_upstream.default = Reply(json=anthropic_message("again"))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    async with sdk(d.url) as client:
        for _ in range(3):
            for provider in ("a", "b"):
                # A model named like a provider routes to that provider alone.
                await client.messages.create(model=provider, max_tokens=10, messages=MESSAGES)
    ports: dict[str, set[int | None]] = {"a-model": set(), "b-model": set()}
    for request in fake_upstream.requests:
        ports[request.json["model"]].add(request.peer_port)
    assert len(fake_upstream.requests) == 6
    assert all(len(used) == 1 for used in ports.values()), ports
    assert ports["a-model"] != ports["b-model"]
    assert fake_upstream.open_connections == 2
