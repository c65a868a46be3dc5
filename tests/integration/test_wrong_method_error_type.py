"""A wrong method is the client's mistake: a 405 in the Anthropic envelope is
typed `invalid_request_error` (Anthropic's type for 4xx it lists no other
for), never `api_error`, which says the server failed."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("GET", "/v1/messages/count_tokens"),
        ("POST", "/v1/models"),
        ("DELETE", "/v1/models/default"),
    ],
)
async def test_a_wrong_method_is_typed_invalid_request_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, method: str, path: str
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    async with aiohttp.ClientSession() as http, http.request(method, f"{d.url}{path}") as resp:
        status, raw = resp.status, await resp.read()
        rid = resp.headers["x-request-id"]
    assert status == 405
    body = json.loads(raw)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["request_id"] == rid
