"""A request that cannot be written for one provider (its dialect, its
model) goes on to the next provider of the chain, which may take it as it
is: an Anthropic client's history whose only user turn is a block no
OpenAI backend reads leaves an openai_compat provider no user message, and
Claude answers it. The request log keeps the refusal. A request malformed
for every provider is still a 400 at once."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from coderouterd.state import reads
from coderouterd.state.records import AttemptRow
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk

# Only a block no OpenAI backend can take: translated, no user message is left.
UNREADABLE = [{"role": "user", "content": [{"type": "container_upload", "file_id": "file_1"}]}]
REFUSAL = "messages: leaves no user message this backend can read"


def local(name: str, url: str) -> str:
    return provider_yaml(name, url + "/v1", kind="openai_compat")


async def logged(d: RunningDaemon, request_id: str) -> tuple[AttemptRow, ...]:
    """The attempts the request log keeps of a request."""
    await d.state.writer.flush()
    row = await d.state.writer.maintain(lambda c: reads.request(c, request_id))
    assert row is not None
    return row.attempts


def outcomes(rows: tuple[AttemptRow, ...]) -> list[tuple[str, str, str | None]]:
    return [(a.provider, a.outcome, a.reason) for a in rows]


async def refusal(url: str) -> anthropic.APIStatusError:
    async with a_sdk(url) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.messages.create(model="m", max_tokens=10, messages=UNREADABLE)
    return caught.value


@pytest.mark.parametrize("stream", [False, True])
async def test_a_history_one_provider_cannot_read_is_answered_by_the_next(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    if stream:
        fake_upstream.script(Reply(events=anthropic_text_stream(["from claude"])))
    else:
        fake_upstream.script(Reply(json=anthropic_message("from claude")))
    d = await start_daemon(
        chain_yaml(local("local", fake_upstream.url), provider_yaml("claude", fake_upstream.url))
    )
    kw: dict[str, Any] = {"model": "m", "max_tokens": 10, "messages": UNREADABLE}
    async with a_sdk(d.url) as client:
        if stream:
            async with client.messages.stream(**kw) as answer:
                message = await answer.get_final_message()
                headers = answer.response.headers
        else:
            raw = await client.messages.with_raw_response.create(**kw)
            message, headers = await raw.parse(), raw.headers
    assert message.content[0].type == "text" and message.content[0].text == "from claude"
    assert headers["x-coderouter-provider"] == "claude"
    # Claude is sent the history as the client wrote it.
    [sent] = fake_upstream.requests
    assert sent.path == "/v1/messages" and sent.json["messages"] == UNREADABLE
    rows = await logged(d, headers["x-request-id"])
    assert outcomes(rows) == [("local", "refused", "invalid_request"), ("claude", "ok", None)]
    assert rows[0].detail == REFUSAL


async def test_a_history_no_provider_can_read_is_the_refusals_400(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(
        chain_yaml(local("local", fake_upstream.url), local("other", fake_upstream.url))
    )
    refused = await refusal(d.url)
    assert refused.status_code == 400
    assert isinstance(refused.body, dict)
    assert refused.body["error"]["type"] == "invalid_request_error"
    assert refused.body["error"]["message"] == REFUSAL
    assert refused.body["error"]["field"] == "messages"
    assert fake_upstream.requests == []
    assert outcomes(await logged(d, refused.response.headers["x-request-id"])) == [
        ("local", "refused", "invalid_request"),
        ("other", "refused", "invalid_request"),
    ]


async def test_a_refusal_beside_a_providers_failure_is_the_all_failed_answer_listing_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Claude, the one that could take the request, may answer a retry: the
    503 has the client's SDK retry, where a 400 would stop it."""
    fake_upstream.script(anthropic_error(503, "overloaded_error", "busy"))
    d = await start_daemon(
        chain_yaml(local("local", fake_upstream.url), provider_yaml("claude", fake_upstream.url))
    )
    refused = await refusal(d.url)
    assert refused.status_code == 503
    assert isinstance(refused.body, dict)
    assert refused.body["error"]["attempts"] == [
        {"provider": "local", "reason": "invalid_request", "status": None},
        {"provider": "claude", "reason": "http_503", "status": 503},
    ]


async def test_a_refusal_beside_a_rate_limit_is_a_429_with_its_wait(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """The provider the request was written for says when to come back; the
    one it could not be written for says nothing of that."""
    limited = anthropic_error(429, "rate_limit_error", "slow down")
    fake_upstream.script(Reply(status=429, json=limited.json, headers={"retry-after": "7"}))
    d = await start_daemon(
        chain_yaml(local("local", fake_upstream.url), provider_yaml("claude", fake_upstream.url))
    )
    refused = await refusal(d.url)
    assert refused.status_code == 429
    assert refused.response.headers["retry-after"] == "7"


async def test_a_request_malformed_for_every_provider_is_refused_at_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`tools` that is no list holds no matter whom it is written for: the
    next provider is not sent it."""
    d = await start_daemon(
        chain_yaml(local("local", fake_upstream.url), provider_yaml("claude", fake_upstream.url))
    )
    async with a_sdk(d.url) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(
                model="m",
                max_tokens=10,
                messages=[{"role": "user", "content": "hi"}],
                tools="x",  # type: ignore[arg-type]
            )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["field"] == "tools"
    assert fake_upstream.requests == []
    assert outcomes(await logged(d, caught.value.response.headers["x-request-id"])) == [
        ("local", "refused", "invalid_request"),
    ]
