"""Token counts as some servers write them: 12.0 is 12, and counts no count
looks like (2.5, "many") leave the usage unknown, never the answer lost."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def with_counts(events: list[Any], input_tokens: object, output_tokens: object) -> list[Any]:
    for name, data in events:
        if name == "message_start":
            data["message"]["usage"]["input_tokens"] = input_tokens
        if name == "message_delta":
            data["usage"]["output_tokens"] = output_tokens
    return events


def logged_usage(logs: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = next(e for e in logs if e["event"] == "request.completed")
    assert done["status"] == 200 and done["error"] is None
    usage: dict[str, Any] | None = done["usage"]
    return usage


# The passthrough forwards the upstream's bytes: the SDK warns of its 2.5.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize(
    ("input_tokens", "output_tokens", "read"),
    [(12.0, 5.0, (12, 5)), (2.5, "many", None)],
    ids=["integral-floats", "not-counts"],
)
async def test_an_anthropic_clients_stream_is_whole_whatever_the_counts(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    input_tokens: object,
    output_tokens: object,
    read: tuple[int, int] | None,
) -> None:
    events = with_counts(anthropic_text_stream(["all ", "of it"]), input_tokens, output_tokens)
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    with capture_logs() as logs:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
            stream = c.messages.stream(model="m", max_tokens=10, messages=MESSAGES)
            async with stream as s:
                message = await s.get_final_message()
    assert message.content[0].type == "text" and message.content[0].text == "all of it"
    usage = logged_usage(logs)
    if read is not None:
        assert usage is not None
        assert (usage["input_tokens"], usage["output_tokens"]) == read


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("input_tokens", "read"), [(12.0, 12), (2.5, None)], ids=["integral-float", "not-a-count"]
)
async def test_an_openai_clients_answer_from_anthropic_is_whole_whatever_the_counts(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    stream: bool,
    input_tokens: float,
    read: int | None,
) -> None:
    if stream:
        events = with_counts(anthropic_text_stream(["all of it"]), input_tokens, 5)
        fake_upstream.script(Reply(events=events))
    else:
        body = anthropic_message("all of it")
        body["usage"]["input_tokens"] = input_tokens
        fake_upstream.script(Reply(json=body))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    with capture_logs() as logs:
        async with openai.AsyncOpenAI(base_url=d.url + "/v1", api_key="k", max_retries=0) as client:
            if stream:
                chunks = await client.chat.completions.create(
                    model="m", messages=MESSAGES, stream=True
                )
                text = "".join(
                    [ch.choices[0].delta.content or "" async for ch in chunks if ch.choices]
                )
            else:
                answer = await client.chat.completions.create(model="m", messages=MESSAGES)
                text = answer.choices[0].message.content or ""
    assert text == "all of it"
    usage = logged_usage(logs)
    if read is not None:
        assert usage is not None and usage["input_tokens"] == read
