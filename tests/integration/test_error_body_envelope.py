"""A provider's 4xx goes back as it was sent only when it is a JSON object
in the client's own error envelope; any other shape (a local server's
Anthropic API answering as an OpenAI server does, vLLM's top-level error
to an OpenAI client) reaches the client in its envelope, with the
provider's message, and without a credential the provider quoted."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import TEST_API_KEY, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

HI: list[Any] = [{"role": "user", "content": "hi"}]
SAID = "the request exceeds the limit"
# llama.cpp's error, on its /v1/messages too.
LLAMA_CPP = {"error": {"code": 400, "message": SAID, "type": "invalid_request_error"}}
# vLLM's: no `error` object.
VLLM = {"object": "error", "message": SAID, "type": "BadRequestError", "param": None, "code": 400}


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("body", [LLAMA_CPP, VLLM], ids=["llama_cpp", "vllm"])
async def test_an_anthropic_client_gets_an_openai_shaped_4xx_in_its_envelope(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, body: dict[str, Any], stream: bool
) -> None:
    fake_upstream.default = Reply(status=400, json=body)
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url)))
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="m", max_tokens=5, messages=HI, stream=stream)
    got = caught.value.body
    assert isinstance(got, dict)
    assert got["type"] == "error"
    assert got["error"] == {"type": "invalid_request_error", "message": SAID}
    # Written by the daemon, so it carries the request's id, as its own errors do.
    assert got["request_id"] == caught.value.response.headers["x-request-id"]


async def test_an_openai_client_gets_vllms_top_level_error_in_its_envelope(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(status=400, json=VLLM, dialect="openai")
    config = chain_yaml(provider_yaml("vllm", fake_upstream.url, kind="openai_compat"))
    d = await start_daemon(config)
    async with openai.AsyncOpenAI(
        base_url=f"{d.url}/v1", api_key="k", max_retries=0, timeout=10
    ) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="m", max_tokens=5, messages=HI)
    got = caught.value.response.json()
    assert set(got) == {"error"}
    assert got["error"]["message"] == SAID
    assert got["error"]["type"] == "invalid_request_error"


def quoting_the_key(req: Recorded) -> Reply:
    """llama.cpp's shape, behind a gateway that quotes the request's headers."""
    quoted = ", ".join(f"{k}: {v}" for k, v in req.headers.items())
    error = {"code": 400, "message": f"bad request (headers: {quoted})", "type": "x"}
    return Reply(status=400, json={"error": error})


async def test_an_openai_shaped_4xx_quoting_the_key_is_enveloped_without_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = quoting_the_key
    config = chain_yaml(provider_yaml("local", fake_upstream.url, extra="api_key_env: A_KEY"))
    d = await start_daemon(config, env={"A_KEY": TEST_API_KEY})
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="m", max_tokens=5, messages=HI)
    assert fake_upstream.requests[0].headers["x-api-key"] == TEST_API_KEY
    got = caught.value.body
    assert isinstance(got, dict)
    assert got["type"] == "error"
    assert "x-api-key: [redacted]" in got["error"]["message"]
    assert TEST_API_KEY not in caught.value.response.text
