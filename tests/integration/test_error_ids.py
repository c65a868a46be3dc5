"""Anthropic error bodies the daemon writes carry the request's id, as its
own errors do and as Anthropic's errors do; an upstream's Anthropic error
passed on as it is keeps its own."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_error
from tests.fakes.upstream import FakeUpstream, Reply

ASK = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}'


async def ask(d: RunningDaemon) -> tuple[int, bytes, str]:
    """The status and body an Anthropic client gets, and the x-request-id header."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{d.url}/v1/messages", data=ASK, headers={"content-type": "application/json"}
        ) as resp,
    ):
        return resp.status, await resp.read(), resp.headers["x-request-id"]


async def test_the_prompt_too_long_for_every_window_carries_the_request_id(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    said = "prompt is too long: 40960 tokens > 32768 maximum"
    fake_upstream.script(
        Reply(
            status=400,
            json={"type": "error", "error": {"type": "invalid_request_error", "message": said}},
        )
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, body, rid = await ask(d)
    assert status == 400
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": said},
        "request_id": rid,
    }


async def test_an_upstream_error_text_put_in_the_envelope_carries_the_request_id(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Ollama's text/plain 404.
    fake_upstream.script(
        Reply(status=404, raw_body=b"404 page not found", headers={"content-type": "text/plain"})
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, body, rid = await ask(d)
    assert status == 404
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "404 page not found"},
        "request_id": rid,
    }


async def test_an_openai_providers_error_told_an_anthropic_client_carries_the_request_id(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(openai_error(404, "no such model", error_type="invalid_request_error"))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    status, body, rid = await ask(d)
    assert status == 404
    error: dict[str, Any] = json.loads(body)
    assert error["type"] == "error" and error["error"]["message"] == "no such model"
    assert error["request_id"] == rid


async def test_an_upstream_anthropic_error_goes_on_as_it_came_with_its_own_id(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Bytes with spacing: passed on as they came, not decoded and written again.
    theirs = (
        b'{"type": "error", "error": {"type": "not_found_error", "message": "model: m"},'
        b' "request_id": "req_011CUpstream"}'
    )
    without = b'{"type": "error", "error": {"type": "permission_error", "message": "no"}}'
    fake_upstream.script(
        Reply(status=404, raw_body=theirs, headers={"content-type": "application/json"}),
        Reply(status=403, raw_body=without, headers={"content-type": "application/json"}),
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    assert (await ask(d))[:2] == (404, theirs)
    assert (await ask(d))[:2] == (403, without)
