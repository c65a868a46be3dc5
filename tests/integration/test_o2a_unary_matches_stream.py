"""An OpenAI client on an Anthropic provider gets the same completion id
shape and model whether it asks for the answer whole or streamed: an id of
the request's (`chatcmpl-<request id>`) and the model it asked for, never
Anthropic's `msg_…` id or the backend's model name."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import o_sdk

HI: list[Any] = [{"role": "user", "content": "hi"}]


async def test_the_unary_completion_has_the_id_and_model_the_stream_has(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(json=anthropic_message("ok", model="claude-backend", message_id="msg_01abc")),
        Reply(events=anthropic_text_stream(["ok"], model="claude-backend", message_id="msg_01abc")),
    )
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    async with o_sdk(d.url) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="asked-model", messages=HI
        )
        unary = raw.parse()
        stream = await client.chat.completions.create(model="asked-model", messages=HI, stream=True)
        chunks = [c async for c in stream]
    request_id = raw.headers["x-request-id"]
    assert unary.id == f"chatcmpl-{request_id}"
    assert unary.model == "asked-model"
    assert {c.model for c in chunks} == {"asked-model"}
    assert all(c.id.startswith("chatcmpl-req_") for c in chunks)
    assert unary.choices[0].message.content == "ok"
