"""The deadlines of one attempt: connect, total before and after the commit point."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import anthropic
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
BODY = {"model": "m", "max_tokens": 10, "messages": MESSAGES}
# How long a filler connection may take before the listener's queue counts as full.
_FILLER_TIMEOUT_S = 0.05
_MAX_FILLERS = 16


def sdk(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0, timeout=10)


@contextlib.contextmanager
def unanswered_url() -> Iterator[str]:
    """A 127.0.0.1 address whose SYNs go unanswered, so a connect times out.

    The listener never accepts; once its accept queue (backlog 0) is full the
    kernel drops further SYNs instead of refusing them. Fillers connect until
    one of them times out, which proves the queue is full.
    """
    fillers: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        try:
            for _ in range(_MAX_FILLERS):
                filler = socket.socket()
                fillers.append(filler)
                filler.settimeout(_FILLER_TIMEOUT_S)
                try:
                    filler.connect(listener.getsockname())
                except TimeoutError:
                    break
            else:
                pytest.fail("the listener's accept queue never filled")
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            for filler in fillers:
                filler.close()


async def test_a_connect_that_does_not_complete_within_connect_s_falls_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=anthropic_message("from b")))
    with unanswered_url() as url:
        # first_byte_s far beyond connect_s: only the connect deadline can fire in time.
        dead = provider_yaml("dead", url, extra="timeouts: {connect_s: 0.2, first_byte_s: 5}")
        d = await start_daemon(chain_yaml(dead, provider_yaml("b", fake_upstream.url)))
        async with sdk(d.url) as client:
            raw = await client.messages.with_raw_response.create(**BODY)
    assert (await raw.parse()).content[0].text == "from b"
    assert raw.headers["x-coderouter-fallback-reason"] == "dead=timeout_connect"


async def test_a_stream_whose_total_runs_out_before_content_falls_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["late"]), delay_before_first_event=5),
        Reply(events=anthropic_text_stream(["fast"])),
    )
    # total_s is the shorter limit; without it the 2 s first_byte_s would fire instead.
    slow = provider_yaml(
        "slow", fake_upstream.url, extra="timeouts: {total_s: 0.3, first_byte_s: 2}"
    )
    d = await start_daemon(chain_yaml(slow, provider_yaml("b", fake_upstream.url)))
    async with sdk(d.url) as client, client.messages.stream(**BODY) as stream:
        message = await stream.get_final_message()
        headers = stream.response.headers
    assert message.content[0].text == "fast"
    assert headers["x-coderouter-provider"] == "b"
    assert headers["x-coderouter-fallback-reason"] == "slow=timeout_total"


async def test_a_stream_whose_total_runs_out_after_content_ends_with_an_error_event(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Events 0.2 s apart, well inside idle_s; the whole stream takes about 1.4 s.
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["one ", "two ", "three "]), delay_between_events=0.2),
        Reply(json=anthropic_message("never asked")),
    )
    slow = provider_yaml("slow", fake_upstream.url, extra="timeouts: {total_s: 0.7, idle_s: 5}")
    d = await start_daemon(chain_yaml(slow, provider_yaml("b", fake_upstream.url)))
    texts: list[str] = []
    async with sdk(d.url) as client, client.messages.stream(**BODY) as stream:
        with pytest.raises(anthropic.APIStatusError) as info:
            async for text in stream.text_stream:
                texts.append(text)
        headers = stream.response.headers
    assert headers["x-coderouter-provider"] == "slow"
    assert texts and "".join(texts) != "one two three "
    assert "timeout_total" in info.value.message
    assert info.value.body["error"]["type"] == "api_error"
    assert fake_upstream.pending == 1


async def test_a_unary_answer_whose_body_outlasts_total_falls_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(json=anthropic_message("late"), delay_within_body=3),
        Reply(json=anthropic_message("fast")),
    )
    slow = provider_yaml("slow", fake_upstream.url, extra="timeouts: {total_s: 0.3}")
    d = await start_daemon(chain_yaml(slow, provider_yaml("b", fake_upstream.url)))
    async with sdk(d.url) as client:
        raw = await client.messages.with_raw_response.create(**BODY)
    assert (await raw.parse()).content[0].text == "fast"
    assert raw.headers["x-coderouter-fallback-reason"] == "slow=timeout_total"
