"""A request with no message to answer is the client's error (400), not the
backend's.

Anthropic and OpenAI both answer `messages: []` with a 400. Sent on, a
lenient backend answers a prompt nobody asked, and llama.cpp's templates
raise ("No user query found in messages", a 500): the daemon would count a
backend failure, fall through the chain and answer 503 `overloaded_error`,
which SDKs and Claude Code retry. The same goes for a request whose
translation leaves an openai_compat backend no user message.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

NO_USER_QUERY = Reply(
    status=500,
    json={"error": {"message": "No user query found in messages.", "type": "server_error"}},
    dialect="openai",
)


async def daemon(start_daemon: StartDaemon, fake: FakeUpstream) -> str:
    fake.script(NO_USER_QUERY)
    fake.default = Reply(json=openai_completion("ok"), dialect="openai")
    d = await start_daemon(chain_yaml(local(fake.url)))
    return d.url


async def anthropic_refusal(url: str, messages: list[Any]) -> anthropic.APIStatusError:
    async with a_sdk(url) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.messages.create(
                model="m", max_tokens=100, system="You are helpful.", messages=messages
            )
    return caught.value


async def test_an_anthropic_client_sending_no_messages_gets_a_400_naming_them(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await daemon(start_daemon, fake_upstream)
    refused = await anthropic_refusal(url, [])
    assert refused.status_code == 400
    assert isinstance(refused.body, dict)
    assert refused.body["error"]["type"] == "invalid_request_error"
    assert "messages" in refused.body["error"]["message"]
    assert fake_upstream.requests == []


async def test_an_openai_client_sending_no_messages_gets_a_400_naming_them(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await daemon(start_daemon, fake_upstream)
    async with o_sdk(url) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="m", messages=[])
    assert isinstance(caught.value.body, dict)
    assert "messages" in str(caught.value.body)
    assert fake_upstream.requests == []


async def test_counting_the_tokens_of_no_messages_is_refused_too(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    url = await daemon(start_daemon, fake_upstream)
    body = {"model": "m", "messages": []}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages/count_tokens", json=body) as resp,
    ):
        assert resp.status == 400


@pytest.mark.parametrize(
    "messages",
    [
        # Only a block no OpenAI backend can take.
        [{"role": "user", "content": [{"type": "container_upload", "file_id": "file_1"}]}],
        # Only the assistant's words.
        [{"role": "assistant", "content": "Once upon a time"}],
    ],
)
async def test_a_request_that_leaves_an_openai_backend_no_user_message_gets_a_400(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, messages: list[Any]
) -> None:
    url = await daemon(start_daemon, fake_upstream)
    refused = await anthropic_refusal(url, messages)
    assert refused.status_code == 400
    assert isinstance(refused.body, dict)
    assert refused.body["error"]["type"] == "invalid_request_error"
    assert "messages" in refused.body["error"]["message"]
    assert fake_upstream.requests == []
