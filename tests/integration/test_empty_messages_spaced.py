"""README: "An empty `messages` list is a 400 naming `messages`, in either
dialect", an empty list laid out over lines and spaces too: it is never
sent on to a provider, and count_tokens refuses it as well."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

# An empty array as a pretty-printer or a hand-written file may lay it out.
SPACED_EMPTY = b"[\n" + b" " * 20 + b"]"


@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/v1/messages", "anthropic"),
        ("/v1/chat/completions", "openai"),
        ("/v1/messages/count_tokens", "anthropic"),
    ],
)
async def test_an_empty_messages_list_with_spacing_inside_is_a_400_naming_messages(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, path: str, dialect: str
) -> None:
    # Each client on a provider of its own dialect: the body would go on as it came.
    if dialect == "openai":
        fake_upstream.default = Reply(json=openai_completion("ok"))
        provider = provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat")
    else:
        fake_upstream.default = Reply(json=anthropic_message("ok"))
        provider = provider_yaml("a", fake_upstream.url)
    d = await start_daemon(chain_yaml(provider))
    body = b'{"model":"m","max_tokens":5,"messages":' + SPACED_EMPTY + b"}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{d.url}{path}", data=body, headers={"content-type": "application/json"}
        ) as resp,
    ):
        status, raw = resp.status, await resp.read()
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param" if dialect == "openai" else "field"] == "messages"
    assert fake_upstream.requests == []
