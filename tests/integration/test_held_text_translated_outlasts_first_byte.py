"""As test_held_text_outlasts_first_byte, through a translation: held text
of an answer under way does not time out `timeout_first_byte` when the
client speaks the other dialect than its provider either."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.clients import a_sdk, local
from tests.integration.test_held_text_outlasts_first_byte import (
    A_TOOLS,
    CALL,
    FAST_START,
    MESSAGES,
    O_TOOLS,
    REASONING,
    called,
    finish_of,
    openai_stream,
    slow,
)

pytestmark = pytest.mark.timeout(30)


async def anthropic_stream(url: str, **kw: Any) -> Any:
    async with (
        a_sdk(url) as client,
        client.messages.stream(model="m", max_tokens=100, messages=MESSAGES, **kw) as stream,
    ):
        return await stream.get_final_message()


async def test_a_call_printed_slower_than_first_byte_s_by_an_openai_provider_reaches_an_anthropic_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(slow("openai", CALL))
    d = await start_daemon(chain_yaml(local(fake_upstream.url, FAST_START)))
    message = await anthropic_stream(d.url, tools=A_TOOLS)
    assert [(b.type, getattr(b, "name", None)) for b in message.content] == [("tool_use", "Read")]
    assert message.stop_reason == "tool_use"
    assert len(fake_upstream.requests) == 1


async def test_reasoning_of_a_template_opened_think_block_longer_than_first_byte_s_reaches_an_anthropic_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(slow("openai", REASONING))
    extra = FAST_START + "\noutput_filters: {assume_think_open: true}"
    d = await start_daemon(chain_yaml(local(fake_upstream.url, extra)))
    message = await anthropic_stream(d.url)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].text == "The answer is 4."
    assert len(fake_upstream.requests) == 1


async def test_a_call_printed_slower_than_first_byte_s_by_an_anthropic_provider_reaches_an_openai_client(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(slow("anthropic", CALL))
    extra = FAST_START + "\noutput_filters: {repair_tool_calls: true}"
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url, extra=extra)))
    chunks, _ = await openai_stream(d.url, tools=O_TOOLS)
    assert called(chunks) == ["Read"]
    assert finish_of(chunks) == "tool_calls"
    assert len(fake_upstream.requests) == 1
