"""A 2xx whose body is an error, or no answer at all, falls through to the
next provider as the same error in a stream does: an Anthropic backend's
error envelope (a gateway in front of Claude answers so), a body that is no
message, an OpenAI backend's error or empty `choices` even with a usage
block beside it. The client gets the next provider's answer; the attempt is
logged a failure, out of memory when the error says so."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_error_body,
    anthropic_message,
    anthropic_usage,
    openai_completion,
    openai_usage,
)
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, o_sdk

HI: list[Any] = [{"role": "user", "content": "hi"}]
# Every output filter off: the passthroughs then forward the answer as bytes.
FILTERS_OFF = (
    "output_filters: {think: 'off', strip_tool_markup: false, repair_tool_calls: false,"
    " strip_stop_markers: false}"
)
# Complete counts beside the error: the hot path reads the usage, and must
# not take the body for an answer because of it.
BILLED = anthropic_usage(9, 0)


def overloaded(**extra: Any) -> dict[str, Any]:
    return anthropic_error_body("overloaded_error", "Overloaded") | extra


async def answer_of(url: str, client: str) -> tuple[str, dict[str, str]]:
    """The text a client of `client`'s dialect got, and the reply's headers."""
    if client == "anthropic":
        async with a_sdk(url) as a:
            raw = await a.messages.with_raw_response.create(model="m", max_tokens=10, messages=HI)
        message = await raw.parse()
        return message.content[0].text, dict(raw.headers)  # type: ignore[union-attr]
    async with o_sdk(url) as o:
        raw_o = await o.chat.completions.with_raw_response.create(model="m", messages=HI)
    return raw_o.parse().choices[0].message.content or "", dict(raw_o.headers)


async def two_claudes(start_daemon: StartDaemon, fake: FakeUpstream, *replies: Reply) -> str:
    fake.script(*replies)
    d = await start_daemon(chain_yaml(provider_yaml("a", fake.url), provider_yaml("b", fake.url)))
    return d.url


@pytest.mark.parametrize("client", ["anthropic", "openai"])
@pytest.mark.parametrize(
    "body",
    [
        overloaded(),
        overloaded(usage=BILLED),
        {"type": "message", "role": "assistant", "content": None, "usage": BILLED},
        {"id": "x", "usage": BILLED},
    ],
    ids=["error_envelope", "error_envelope_with_usage", "null_content", "no_message"],
)
async def test_an_anthropic_200_that_is_no_message_falls_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, client: str, body: dict[str, Any]
) -> None:
    url = await two_claudes(
        start_daemon, fake_upstream, Reply(json=body), Reply(json=anthropic_message("from b"))
    )
    text, headers = await answer_of(url, client)
    assert text == "from b"
    assert headers["x-coderouter-provider"] == "b"
    assert headers["x-coderouter-fallback-reason"] == "a=protocol_error"


@pytest.mark.parametrize("client", ["anthropic", "openai"])
async def test_an_out_of_memory_error_in_a_200_falls_through_as_memory_pressure(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, client: str
) -> None:
    """Read as the same error event in a stream is: by its own words."""
    oom = anthropic_error_body("api_error", "CUDA out of memory")
    url = await two_claudes(
        start_daemon, fake_upstream, Reply(json=oom), Reply(json=anthropic_message("from b"))
    )
    text, headers = await answer_of(url, client)
    assert text == "from b"
    assert headers["x-coderouter-fallback-reason"] == "a=memory_pressure"


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": 502, "message": "Provider returned error"}, "usage": openai_usage(9, 0)},
        {"id": "c1", "object": "chat.completion", "choices": [], "usage": openai_usage(9, 0)},
        {"id": "c1", "choices": [{"index": 0, "message": None}], "usage": openai_usage(9, 0)},
    ],
    ids=["error_body", "no_choices", "no_message"],
)
async def test_an_openai_200_that_is_no_completion_falls_through_though_it_has_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, body: dict[str, Any]
) -> None:
    fake_upstream.script(
        Reply(dialect="openai", json=body),
        Reply(dialect="openai", json=openai_completion("from b")),
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat", extra=FILTERS_OFF),
            provider_yaml("b", fake_upstream.url + "/v1", kind="openai_compat", extra=FILTERS_OFF),
        )
    )
    text, headers = await answer_of(d.url, "openai")
    assert text == "from b"
    assert headers["x-coderouter-fallback-reason"] == "a=protocol_error"


async def test_a_plain_answer_still_goes_through_as_the_backend_sent_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The glance that tells an answer from an error keeps the bytes: a field
    the daemon does not know reaches the client."""
    message = anthropic_message("ok") | {"unknown_field": {"kept": True}}
    message["usage"] = BILLED
    url = await two_claudes(start_daemon, fake_upstream, Reply(json=message))
    async with a_sdk(url) as a:
        raw = await a.messages.with_raw_response.create(model="m", max_tokens=10, messages=HI)
    assert raw.headers["x-coderouter-provider"] == "a"
    assert raw.http_response.json()["unknown_field"] == {"kept": True}
