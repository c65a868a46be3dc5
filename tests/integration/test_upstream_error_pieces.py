"""An upstream's error body is read whole (up to its 256 KiB cap), however
many pieces it arrives in: a chunked body, a proxy relaying it as it comes."""

from __future__ import annotations

import anthropic
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}
KEY = "sk-ant-own-0123456789abcdef"


def in_two_pieces(status: int, head: bytes, rest: bytes) -> Reply:
    # Two writes 50 ms apart: the daemon has the first before the second is sent.
    return Reply(
        status=status,
        headers={"content-type": "application/json"},
        writes=[head, rest],
        delay_between_events=0.05,
    )


def sdk(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0, timeout=10)


async def test_a_context_overflow_in_two_pieces_falls_through_to_the_next_provider(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as small, FakeUpstream() as large:
        small.script(
            in_two_pieces(
                400,
                b'{"type":"error","error":{"type":"invalid_request_error",',
                b'"message":"prompt is too long: 40960 tokens > 32768 maximum"}}',
            )
        )
        large.default = Reply(json=anthropic_message("from large"))
        d = await start_daemon(
            chain_yaml(provider_yaml("small", small.url), provider_yaml("large", large.url))
        )
        async with sdk(d.url) as client:
            raw = await client.messages.with_raw_response.create(**BODY)
    assert (await raw.parse()).content[0].text == "from large"
    assert raw.headers["x-coderouter-fallback-reason"] == "small=context_exceeded"


async def test_a_4xx_in_two_pieces_reaches_the_client_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    message = "messages.0.content: Input should be a valid list"
    fake_upstream.script(
        in_two_pieces(
            400,
            b'{"type":"error","error":{"type":"invalid_request_error",',
            b'"message":"' + message.encode() + b'"}}',
        )
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with sdk(d.url) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(**BODY)
    assert info.value.body["error"]["message"] == message


async def test_a_key_quoted_across_two_pieces_is_redacted(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The provider's own key, split where the pieces meet: the first alone
    # holds only part of it, which no redaction can recognise.
    fake_upstream.script(
        in_two_pieces(
            401,
            b'{"type":"error","error":{"type":"authentication_error",'
            b'"message":"invalid x-api-key ' + KEY[:14].encode(),
            KEY[14:].encode() + b'"}}',
        )
    )
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url, extra="api_key_env: OWN_KEY")),
        env={"OWN_KEY": KEY},
    )
    async with sdk(d.url) as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await client.messages.create(**BODY)
    assert info.value.body["error"]["message"] == "invalid x-api-key [redacted]"
