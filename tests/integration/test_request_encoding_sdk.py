"""Request bodies in a content coding as Anthropic's own API treats them:
gzip padded with zero bytes is read, and each refusal carries the
`error.details.error_code` the Anthropic SDK raises a class of its own for."""

from __future__ import annotations

import gzip
import json

import aiohttp
import anthropic
import pytest
from anthropic.types.shared.request_body_encoding_invalid_error import (
    RequestBodyEncodingInvalidError,
)
from anthropic.types.shared.request_body_encoding_unsupported_error import (
    RequestBodyEncodingUnsupportedError,
)
from anthropic.types.shared.request_body_too_large_after_decoding_error import (
    RequestBodyTooLargeAfterDecodingError,
)

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk

BODY = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
LIMIT = 100_000


async def post(url: str, body: bytes, coding: str) -> tuple[int, bytes]:
    """`body` sent as JSON in `coding`: the status and the answer's bytes."""
    headers = {"content-type": "application/json", "content-encoding": coding}
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers, timeout=timeout) as resp,
    ):
        return resp.status, await resp.read()


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_a_gzip_body_padded_with_zeros_is_decoded(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, path: str
) -> None:
    # Zero bytes after the last member (tape-block padding): gzip itself skips them.
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    body = gzip.compress(BODY) + b"\x00" * 8 + gzip.compress(b"") + b"\x00" * 3
    assert gzip.decompress(body) == BODY
    status, raw = await post(d.url + path, body, "gzip")
    assert status == 200, raw


async def test_bytes_after_the_zero_padding_that_are_no_gzip_member_are_refused(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, raw = await post(d.url + "/v1/messages", gzip.compress(BODY) + b"\x00\x00junk", "gzip")
    error = json.loads(raw)["error"]
    assert status == 400
    assert error["details"] == {"error_code": "request_body_encoding_invalid"}
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    ("coding", "body", "expected"),
    [
        ("zstd", BODY, RequestBodyEncodingUnsupportedError),
        ("gzip", b"\x1f\x8b\x08\x00not gzip at all", RequestBodyEncodingInvalidError),
        # About 2 KB sent, 2 MB once decoded: past the limit only decoded.
        (
            "gzip",
            gzip.compress(BODY[:-1] + b" " * 2_000_000 + b"}"),
            RequestBodyTooLargeAfterDecodingError,
        ),
    ],
)
async def test_the_anthropic_sdk_reads_an_encoding_refusal_as_its_own_error_class(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    coding: str,
    body: bytes,
    expected: type[anthropic.APIStatusError],
) -> None:
    top = f"server: {{max_body_bytes: {LIMIT}}}\n"
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url), top=top))
    headers = {"content-encoding": coding, "content-type": "application/json"}
    async with a_sdk(d.url) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.post(
                "/v1/messages", content=body, cast_to=object, options={"headers": headers}
            )
    assert isinstance(caught.value, expected), (type(caught.value), caught.value.body)
    assert fake_upstream.requests == []


async def test_an_openai_client_gets_the_same_cause_as_its_code(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, raw = await post(d.url + "/v1/chat/completions", b"{}", "br")
    error = json.loads(raw)["error"]
    assert status == 400
    assert (error["param"], error["code"]) == ("body", "request_body_encoding_unsupported")
