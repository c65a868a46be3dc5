"""Once keep-alive pings sent a stream's 200, an error that would have been a
plain response goes in-stream, and it is the same body: the `code` and
`param` an OpenAI client acts on (it trims its history on
`context_length_exceeded`), the field a request error names, the attempts
of the all-failed error (README "How a request is routed" step 4), a
provider's own error as it was written."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_error_body, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import o_sdk

PINGS = "server: {keepalive_after_s: 0.1, keepalive_interval_s: 0.1}\n"
HI = [{"role": "user", "content": "hi"}]
TOO_LONG = "prompt is too long: 250000 tokens > 200000 maximum"
PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}
# A first provider slow enough for pings, then given up on.
SLOW = "timeouts: {first_byte_s: 0.3}"


async def streamed(url: str, dialect: str, body: dict[str, Any]) -> bytes:
    """A stream as the client read it, checked to have started with a ping."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}{PATHS[dialect]}", json=body, timeout=aiohttp.ClientTimeout(total=15)
        ) as resp,
    ):
        assert resp.status == 200
        raw = await resp.read()
    assert raw.startswith(b"event: ping\n" if dialect == "anthropic" else b": keep-alive\n\n")
    return raw


def last_error(raw: bytes) -> dict[str, Any]:
    last = raw.rstrip().rsplit(b"\n\n", 1)[-1]
    data = b"".join(
        line[len(b"data: ") :] for line in last.split(b"\n") if line.startswith(b"data: ")
    )
    error: dict[str, Any] = json.loads(data)["error"]
    return error


async def test_a_prompt_too_long_after_pings_keeps_its_code_and_param_for_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A long prompt is the one whose prefill is slow enough for pings; its
    client trims its history on `code: context_length_exceeded` whether the
    error came as the 400 or in-stream."""
    body = anthropic_error_body("invalid_request_error", TOO_LONG)
    d = await start_daemon(PINGS + chain_yaml(provider_yaml("claude", fake_upstream.url)))
    async with o_sdk(d.url) as client:
        fake_upstream.script(Reply(status=400, json=body))
        with pytest.raises(openai.BadRequestError) as unpinged:
            await client.chat.completions.create(model="m", messages=HI, stream=True)
        fake_upstream.script(Reply(status=400, json=body, delay_before_headers=0.5))
        with pytest.raises(openai.APIError) as pinged:
            stream = await client.chat.completions.create(model="m", messages=HI, stream=True)
            async for _ in stream:
                pass
    assert not isinstance(pinged.value, openai.APIStatusError)  # in-stream, after the 200
    assert (unpinged.value.code, unpinged.value.param) == ("context_length_exceeded", "messages")
    assert pinged.value.body == unpinged.value.body


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
async def test_the_all_failed_error_after_pings_lists_the_attempts(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, dialect: str
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["x"]), delay_before_first_event=0.4))
    fake_upstream.default = anthropic_error(503, "overloaded_error", "busy")
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url, extra=SLOW),
            provider_yaml("b", fake_upstream.url),
            top=PINGS,
        )
    )
    body = {"model": "m", "max_tokens": 10, "stream": True, "messages": HI}
    error = last_error(await streamed(d.url, dialect, body))
    assert "no provider of profile 'default'" in error["message"]
    assert error["attempts"] == [
        {"provider": "a", "reason": "timeout_first_byte", "status": None},
        {"provider": "b", "reason": "http_503", "status": 503},
    ], error


# A client's dialect, its request's malformed field, and where its error
# names the field. The first provider is sent it as it is (passthrough)
# and is slow; the translation for the second finds the field malformed.
MALFORMED = {
    "anthropic": ({"tools": "x"}, "field", "tools"),
    "openai": ({"stop": 5}, "param", "stop"),
}
# Each dialect's passthrough provider, then one it is translated for.
KINDS = {"anthropic": ("anthropic", "openai_compat"), "openai": ("openai_compat", "anthropic")}


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
async def test_a_request_error_after_pings_names_its_field(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, dialect: str
) -> None:
    malformed, key, field = MALFORMED[dialect]
    first, second = KINDS[dialect]

    def url(kind: str) -> str:
        return fake_upstream.url + ("/v1" if kind == "openai_compat" else "")

    fake_upstream.script(Reply(json={}, delay_before_headers=0.4))
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", url(first), kind=first, extra=SLOW),
            provider_yaml("b", url(second), kind=second),
            top=PINGS,
        )
    )
    body = {"model": "m", "max_tokens": 10, "stream": True, "messages": HI, **malformed}
    error = last_error(await streamed(d.url, dialect, body))
    assert error["type"] == "invalid_request_error"
    assert error.get(key) == field, error
    assert error["message"].startswith(f"{field}: ")


async def test_a_providers_error_after_pings_reaches_an_openai_client_as_written(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Indented over several lines, as some servers write it: it goes as
    several data lines, which the SDK joins."""
    written = {
        "error": {
            "message": "unknown model variant",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    raw = json.dumps(written, indent=2).encode()
    fake_upstream.script(Reply(status=400, raw_body=raw, delay_before_headers=0.4))
    d = await start_daemon(
        PINGS + chain_yaml(provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    async with o_sdk(d.url) as client:
        with pytest.raises(openai.APIError) as caught:
            stream = await client.chat.completions.create(model="m", messages=HI, stream=True)
            async for _ in stream:
                pass
    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.body == written["error"]


async def test_a_providers_answer_in_no_error_envelope_after_pings_is_put_in_one(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A JSON answer of another shape goes to a plain response as it is;
    in-stream, the reader looks for an `error` object: it gets one, with the
    provider's words."""
    fake_upstream.script(
        Reply(status=400, raw_body=b'{"detail": "n_ctx too small"}', delay_before_headers=0.4)
    )
    d = await start_daemon(
        PINGS + chain_yaml(provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    body = {"model": "m", "stream": True, "messages": HI}
    error = last_error(await streamed(d.url, "openai", body))
    assert error["type"] == "invalid_request_error"
    assert "n_ctx too small" in error["message"], error
