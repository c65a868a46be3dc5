"""While the output filters hold an answer's text, nothing of it has reached
the client: an upstream that fails then (goes silent past idle_s, is cut,
runs past total_s) falls through to the next provider, which answers in
its place. The limits of a stream under way apply from the first content
frame on; first_byte_s still bounds one that sends none."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import local
from tests.integration.test_held_text_outlasts_first_byte import (
    CALL,
    O_TOOLS,
    called,
    openai_stream,
    slow,
)

pytestmark = pytest.mark.timeout(30)

FALLBACK = "x-coderouter-fallback-reason"
LONG_CALL = CALL.replace("src/main.py", "src/" + "deep/" * 40 + "main.py")


def answer(text: str) -> Reply:
    return Reply(dialect="openai", events=openai_text_stream([text]))


async def fell_back(start_daemon: StartDaemon, fake: FakeUpstream, a_extra: str) -> str:
    """The fallback reason the client is told, after `a` (scripted first)
    failed and `b` answered the whole of its text."""
    d = await start_daemon(
        chain_yaml(
            local(fake.url, a_extra),
            provider_yaml("b", fake.url + "/v1", kind="openai_compat"),
        )
    )
    chunks, headers = await openai_stream(d.url, tools=O_TOOLS)
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == "from b"
    assert called(chunks) == []
    assert len(fake.requests) == 2
    return str(headers[FALLBACK])


async def test_an_upstream_silent_past_idle_s_while_its_call_is_held_falls_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The role chunk and four pieces of the call (0.6 s), then silence.
    a = slow("openai", CALL, pause_after_frames=5, resume=asyncio.Event())
    fake_upstream.script(a, answer("from b"))
    limits = "timeouts: {first_byte_s: 0.5, idle_s: 0.5}"
    assert await fell_back(start_daemon, fake_upstream, limits) == "local=timeout_idle"


async def test_an_upstream_cut_while_its_call_is_held_falls_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    a = slow("openai", CALL, disconnect_after_events=7)
    fake_upstream.script(a, answer("from b"))
    reason = await fell_back(start_daemon, fake_upstream, "timeouts: {first_byte_s: 0.5}")
    assert reason == "local=protocol_error"


async def test_total_s_bounds_a_call_held_past_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    a = Reply(
        dialect="openai",
        events=openai_text_stream(list(LONG_CALL)),
        delay_between_events=0.1,
    )
    fake_upstream.script(a, answer("from b"))
    limits = "timeouts: {first_byte_s: 0.3, idle_s: 5, total_s: 1}"
    assert await fell_back(start_daemon, fake_upstream, limits) == "local=timeout_total"


async def test_first_byte_s_still_bounds_an_upstream_that_sends_no_content(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The role chunk (no text, no call, no finish_reason), then nothing.
    a = slow("openai", CALL, pause_after_frames=1, resume=asyncio.Event())
    fake_upstream.script(a, answer("from b"))
    limits = "timeouts: {first_byte_s: 0.5, idle_s: 5}"
    assert await fell_back(start_daemon, fake_upstream, limits) == "local=timeout_first_byte"
