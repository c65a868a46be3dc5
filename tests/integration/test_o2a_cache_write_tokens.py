"""An OpenAI client on an Anthropic provider is told how many prompt tokens
were written to the prompt cache (`prompt_tokens_details.cache_write_tokens`,
a field of the openai SDK's usage) beside the cached ones, whole or
streamed: a write costs more than a prompt token, a read less, and both are
inside `prompt_tokens`."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types import CompletionUsage

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import o_sdk

HI: list[Any] = [{"role": "user", "content": "hi"}]
CACHED = {"cache_creation_input_tokens": 1000, "cache_read_input_tokens": 200}


def with_cache_counts(stream: bool) -> Reply:
    if not stream:
        message = anthropic_message("ok")
        message["usage"] = {"input_tokens": 10, "output_tokens": 5, **CACHED}
        return Reply(json=message)
    events = anthropic_text_stream(["ok"])
    start = events[0][1]["message"]
    start["usage"] = {**start["usage"], **CACHED}
    return Reply(events=events)


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
async def test_cache_writes_are_reported_to_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    fake_upstream.script(with_cache_counts(stream))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    usage: CompletionUsage | None
    async with o_sdk(d.url) as client:
        if stream:
            chunks = await client.chat.completions.create(
                model="m", messages=HI, stream=True, stream_options={"include_usage": True}
            )
            usage = [c.usage async for c in chunks if c.usage is not None][-1]
        else:
            usage = (await client.chat.completions.create(model="m", messages=HI)).usage
    assert usage is not None and usage.prompt_tokens == 1210
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 200
    assert usage.prompt_tokens_details.cache_write_tokens == 1000
